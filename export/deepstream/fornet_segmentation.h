/*
 * The C interface of FoR-Net's GPU segmentation parser for DeepStream (fornet export --deepstream ships this
 * file beside fornet_segmentation_argmax.cu and fornet_segmentation_meta.cpp).
 *
 * fornet_segmentation_argmax.cu: nvinfer's segmentation parser rule as a CUDA kernel, its launcher, and
 * the choice of the kernel's arguments from an output layer's description. CUDA runtime only.
 * fornet_segmentation_meta.cpp: what a pad probe calls after nvinfer (network-type=100,
 * output-tensor-meta=1): it labels each frame's scores on the GPU and attaches NvDsInferSegmentationMeta,
 * as nvinfer's own network-type=2 does, so nvsegvisual and probes reading NVDSINFER_SEGMENTATION_META
 * work downstream. Needs DeepStream's headers and libraries.
 */
#ifndef FORNET_SEGMENTATION_H
#define FORNET_SEGMENTATION_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a layer cannot be parsed or a buffer labelled (fornet_segmentation_meta_attach returns the negative). */
enum FornetSegmentationStatus
{
    FORNET_SEGMENTATION_OK = 0,
    /* The layer is neither FP32 nor FP16 (NvDsInferDataType FLOAT or HALF). */
    FORNET_SEGMENTATION_UNSUPPORTED_DATA_TYPE = 1,
    /* The layer is not 3-D (C x H x W or H x W x C, no batch axis) with every size above zero. */
    FORNET_SEGMENTATION_BAD_DIMS = 2,
    /* segmentation-output-order is neither 0 (C x H x W) nor 1 (H x W x C). */
    FORNET_SEGMENTATION_BAD_ORDER = 3,
    /* The layer's class count differs from num-detected-classes. */
    FORNET_SEGMENTATION_CLASS_MISMATCH = 4,
    /* The GstBuffer carries no NvDsBatchMeta (the probe is not downstream of nvstreammux). */
    FORNET_SEGMENTATION_NO_BATCH_META = 5,
    /* The nvinfer tensor meta has no output layer of the configured name. */
    FORNET_SEGMENTATION_NO_LAYER = 6,
    /* A CUDA call failed (kernel launch, copy, allocation). */
    FORNET_SEGMENTATION_CUDA_ERROR = 7,
    /* A null context or buffer was passed. */
    FORNET_SEGMENTATION_BAD_ARGUMENT = 8
};

/* What the kernel is told about one frame's scores. */
typedef struct
{
    int dtype;   /* 0 float32, 1 float16 */
    int classes;
    int height;
    int width;
} FornetScoreShape;

/*
 * Label ``batch`` frames of scores on ``stream`` (asynchronous; synchronise before reading ``class_map``).
 * ``scores``: device memory, float32 (dtype 0) or float16 (dtype 1), frames one after another, each
 * classes x height x width (order 0, segmentation-output-order=0) or height x width x classes (order 1).
 * ``class_map``: device memory for batch x height x width int32 labels (-1: unlabelled). Returns a
 * cudaError_t: cudaSuccess, cudaErrorInvalidValue for bad arguments, or the launch's error.
 */
int fornet_segmentation_argmax(const void *scores, int dtype, int batch, int classes, int height, int width,
    int order, float threshold, int32_t *class_map, cudaStream_t stream);

/* A short English text for a FornetSegmentationStatus (never null). */
const char *fornet_segmentation_status_text(int status);

/*
 * The kernel's arguments for an output layer: ``data_type`` is the layer's NvDsInferDataType (0 FLOAT,
 * 1 HALF), ``dims`` its ``num_dims`` sizes (NvDsInferDims, no batch axis), ``order`` the config's
 * segmentation-output-order, ``expected_classes`` its num-detected-classes (0: any). Fills ``shape``
 * and returns FORNET_SEGMENTATION_OK, else the reason (``shape`` untouched).
 */
int fornet_segmentation_layer_shape(int data_type, unsigned int num_dims, const unsigned int *dims, int order,
    int expected_classes, FornetScoreShape *shape);

/* ---- fornet_segmentation_meta.cpp (DeepStream) ---- */

/* One nvinfer's settings, a CUDA stream and scratch memory; create once per pipeline. */
typedef struct FornetSegmentationMeta FornetSegmentationMeta;
struct _GstBuffer;

/*
 * A context for the nvinfer of gie-unique-id ``unique_id``, its scores layer ``layer_name`` (null: the
 * first output layer), ``classes`` (num-detected-classes; 0: any), segmentation-threshold ``threshold``
 * and segmentation-output-order ``order``. Null when ``order`` is not 0 or 1 or ``classes`` < 0.
 */
FornetSegmentationMeta *fornet_segmentation_meta_create(unsigned int unique_id, const char *layer_name,
    int classes, float threshold, int order);

/* Free the context (its CUDA stream and scratch memory); null is allowed. */
void fornet_segmentation_meta_destroy(FornetSegmentationMeta *context);

/*
 * Label every frame of ``buffer`` (a GstBuffer after nvstreammux and nvinfer) whose NvDsInferTensorMeta
 * comes from the context's nvinfer and attach NvDsInferSegmentationMeta (NVDSINFER_SEGMENTATION_META frame
 * user meta). Frames that already have it from this nvinfer are skipped. Returns the number of frames
 * labelled, or -FornetSegmentationStatus (nothing attached).
 */
int fornet_segmentation_meta_attach(FornetSegmentationMeta *context, struct _GstBuffer *buffer);

#ifdef __GST_PAD_H__
/* A GstPadProbeCallback (GST_PAD_PROBE_TYPE_BUFFER) calling fornet_segmentation_meta_attach with the
 * context as user data; errors are printed, the buffer always passes. */
GstPadProbeReturn fornet_segmentation_meta_probe(GstPad *pad, GstPadProbeInfo *info, gpointer context);
#endif

#ifdef __cplusplus
}
#endif

#endif /* FORNET_SEGMENTATION_H */
