/*
 * NvDsInferSegmentationMeta from nvinfer's tensor meta, labelled on the GPU (fornet export --deepstream ships
 * this file in the package as fornet_segmentation_meta.cpp).
 *
 * nvinfer runs the scores graph with network-type=100, output-tensor-meta=1 and disable-output-host-copy=1
 * (config_infer_primary_fornet_scores_gpu.txt): the C x H x W scores stay on the GPU and each frame gets an
 * NvDsInferTensorMeta. A pad probe after nvinfer calls fornet_segmentation_meta_attach() with the GstBuffer:
 * for each frame whose tensor meta comes from our nvinfer (gie-unique-id), it runs
 * fornet_segmentation_argmax() on the scores layer's device buffer (layout and type from the layer's
 * description, threshold and order from the config), copies the int32 class map (4 bytes per pixel) to the
 * host and attaches an NvDsInferSegmentationMeta as NVDSINFER_SEGMENTATION_META frame user meta, the meta
 * nvinfer's own segmentation parser attaches, so nvsegvisual and probes reading it work downstream.
 *
 * The meta owns its class map (g_malloc); class_probabilities_map is NULL: the probabilities stay on the GPU
 * (nvinfer points it at its host copy of the scores, which disable-output-host-copy removes). Its release
 * function frees both with the meta; its copy function duplicates the class map.
 *
 * Build, with fornet_segmentation_argmax.cu, into one library (the package README has the command).
 */
#include "fornet_segmentation.h"

#include <cuda_runtime_api.h>
#include <glib.h>
#include <gst/gst.h>

#include <mutex>
#include <string>
#include <vector>

#include "gstnvdsinfer.h"
#include "gstnvdsmeta.h"
#include "nvdsinfer.h"
#include "nvdsmeta.h"

struct FornetSegmentationMeta
{
    guint uniqueId;
    std::string layerName; // empty: the first output layer
    int classes;           // num-detected-classes; 0: any
    float threshold;
    int order;
    std::mutex mutex;      // one buffer at a time per context (the scratch map and the stream are shared)
    int device = -1;
    cudaStream_t stream = nullptr;
    int32_t* deviceMap = nullptr;
    size_t capacity = 0;   // int32 elements in deviceMap
};

namespace
{

//! One frame to label: where its scores are and where its labels go.
struct PendingFrame
{
    NvDsFrameMeta* frame;
    void const* scores;
    FornetScoreShape shape;
    gint* classMap;
};

int cudaFailure(cudaError_t error, char const* what)
{
    g_printerr("fornet_segmentation_meta: %s: %s\n", what, cudaGetErrorString(error));
    return -FORNET_SEGMENTATION_CUDA_ERROR;
}

void releaseResources(FornetSegmentationMeta& context)
{
    if (context.device >= 0)
    {
        cudaSetDevice(context.device);
    }
    cudaFree(context.deviceMap);
    if (context.stream != nullptr)
    {
        cudaStreamDestroy(context.stream);
    }
    context.deviceMap = nullptr;
    context.capacity = 0;
    context.stream = nullptr;
    context.device = -1;
}

//! A stream and ``elements`` int32 of scratch on ``device`` (nvinfer's gpu-id).
cudaError_t prepare(FornetSegmentationMeta& context, int device, size_t elements)
{
    if (context.device != device)
    {
        releaseResources(context);
    }
    cudaError_t status = cudaSetDevice(device);
    if (status == cudaSuccess && context.stream == nullptr)
    {
        status = cudaStreamCreateWithFlags(&context.stream, cudaStreamNonBlocking);
        context.device = device;
    }
    if (status == cudaSuccess && context.capacity < elements)
    {
        cudaFree(context.deviceMap);
        context.deviceMap = nullptr;
        context.capacity = 0;
        status = cudaMalloc(reinterpret_cast<void**>(&context.deviceMap), elements * sizeof(int32_t));
        if (status == cudaSuccess)
        {
            context.capacity = elements;
        }
    }
    return status;
}

void releaseSegmentationMeta(gpointer data, gpointer)
{
    auto* userMeta = static_cast<NvDsUserMeta*>(data);
    auto* meta = static_cast<NvDsInferSegmentationMeta*>(userMeta->user_meta_data);
    if (meta != nullptr)
    {
        g_free(meta->class_map);
        g_free(meta->class_probabilities_map);
        g_free(meta);
        userMeta->user_meta_data = nullptr;
    }
}

gpointer copySegmentationMeta(gpointer data, gpointer)
{
    auto const* source
        = static_cast<NvDsInferSegmentationMeta const*>(static_cast<NvDsUserMeta*>(data)->user_meta_data);
    auto* meta = g_new0(NvDsInferSegmentationMeta, 1);
    *meta = *source;
    gsize const pixels = static_cast<gsize>(source->width) * source->height;
    meta->class_map = static_cast<gint*>(g_memdup2(source->class_map, pixels * sizeof(gint)));
    meta->class_probabilities_map = source->class_probabilities_map == nullptr ? nullptr
        : static_cast<gfloat*>(g_memdup2(source->class_probabilities_map, pixels * source->classes * sizeof(gfloat)));
    meta->priv_data = nullptr;
    return meta;
}

bool hasSegmentationMeta(NvDsFrameMeta const* frame, guint uniqueId)
{
    for (NvDsMetaList* item = frame->frame_user_meta_list; item != nullptr; item = item->next)
    {
        auto const* userMeta = static_cast<NvDsUserMeta const*>(item->data);
        auto const* meta = static_cast<NvDsInferSegmentationMeta const*>(userMeta->user_meta_data);
        if (userMeta->base_meta.meta_type == NVDSINFER_SEGMENTATION_META && meta != nullptr
            && meta->unique_id == static_cast<gint>(uniqueId))
        {
            return true;
        }
    }
    return false;
}

//! Index of the context's layer in ``tensor``, or -1.
int findLayer(FornetSegmentationMeta const& context, NvDsInferTensorMeta const* tensor)
{
    for (guint i = 0; i < tensor->num_output_layers; ++i)
    {
        char const* name = tensor->output_layers_info[i].layerName;
        if (context.layerName.empty() || (name != nullptr && context.layerName == name))
        {
            return static_cast<int>(i);
        }
    }
    return -1;
}

//! The frames of ``batch`` our nvinfer gave tensor meta and no segmentation meta yet; 0 or a negative status.
int collectFrames(FornetSegmentationMeta const& context, NvDsBatchMeta* batch, int& device,
    std::vector<PendingFrame>& pending)
{
    for (NvDsMetaList* frames = batch->frame_meta_list; frames != nullptr; frames = frames->next)
    {
        auto* frame = static_cast<NvDsFrameMeta*>(frames->data);
        if (hasSegmentationMeta(frame, context.uniqueId))
        {
            continue;
        }
        for (NvDsMetaList* item = frame->frame_user_meta_list; item != nullptr; item = item->next)
        {
            auto const* userMeta = static_cast<NvDsUserMeta const*>(item->data);
            if (userMeta->base_meta.meta_type != NVDSINFER_TENSOR_OUTPUT_META)
            {
                continue;
            }
            auto const* tensor = static_cast<NvDsInferTensorMeta const*>(userMeta->user_meta_data);
            if (tensor->unique_id != context.uniqueId)
            {
                continue;
            }
            int const layer = findLayer(context, tensor);
            if (layer < 0)
            {
                return -FORNET_SEGMENTATION_NO_LAYER;
            }
            NvDsInferLayerInfo const& info = tensor->output_layers_info[layer];
            PendingFrame entry{frame, tensor->out_buf_ptrs_dev[layer], {}, nullptr};
            int const status = fornet_segmentation_layer_shape(static_cast<int>(info.dataType),
                info.inferDims.numDims, info.inferDims.d, context.order, context.classes, &entry.shape);
            if (status != FORNET_SEGMENTATION_OK)
            {
                return -status;
            }
            device = tensor->gpu_id;
            pending.push_back(entry);
            break;
        }
    }
    return 0;
}

//! Label every pending frame into its host class map (one synchronisation for the batch). On a failure the
//! stream is drained first, so that no copy queued before it still writes into a class map the caller frees.
int labelFrames(FornetSegmentationMeta& context, int device, std::vector<PendingFrame>& pending)
{
    size_t total = 0;
    for (PendingFrame const& entry : pending)
    {
        total += static_cast<size_t>(entry.shape.height) * entry.shape.width;
    }
    cudaError_t status = prepare(context, device, total);
    if (status != cudaSuccess)
    {
        return cudaFailure(status, "allocating the class map");
    }
    size_t offset = 0;
    for (PendingFrame& entry : pending)
    {
        FornetScoreShape const& shape = entry.shape;
        size_t const pixels = static_cast<size_t>(shape.height) * shape.width;
        int32_t* deviceMap = context.deviceMap + offset;
        status = static_cast<cudaError_t>(fornet_segmentation_argmax(entry.scores, shape.dtype, 1, shape.classes,
            shape.height, shape.width, context.order, context.threshold, deviceMap, context.stream));
        if (status != cudaSuccess)
        {
            cudaStreamSynchronize(context.stream);
            return cudaFailure(status, "launching the argmax kernel");
        }
        entry.classMap = g_new(gint, pixels);
        status = cudaMemcpyAsync(
            entry.classMap, deviceMap, pixels * sizeof(int32_t), cudaMemcpyDeviceToHost, context.stream);
        if (status != cudaSuccess)
        {
            cudaStreamSynchronize(context.stream);
            return cudaFailure(status, "copying the class map to the host");
        }
        offset += pixels;
    }
    status = cudaStreamSynchronize(context.stream);
    return status == cudaSuccess ? 0 : cudaFailure(status, "running the argmax kernel");
}

void attach(FornetSegmentationMeta const& context, NvDsBatchMeta* batch, PendingFrame& entry)
{
    auto* meta = g_new0(NvDsInferSegmentationMeta, 1);
    meta->classes = static_cast<guint>(entry.shape.classes);
    meta->width = static_cast<guint>(entry.shape.width);
    meta->height = static_cast<guint>(entry.shape.height);
    meta->class_map = entry.classMap;
    meta->class_probabilities_map = nullptr;
    meta->priv_data = nullptr;
    meta->unique_id = static_cast<gint>(context.uniqueId);
    entry.classMap = nullptr; // owned by the meta now

    NvDsUserMeta* userMeta = nvds_acquire_user_meta_from_pool(batch);
    userMeta->user_meta_data = meta;
    userMeta->base_meta.meta_type = NVDSINFER_SEGMENTATION_META;
    userMeta->base_meta.release_func = releaseSegmentationMeta;
    userMeta->base_meta.copy_func = copySegmentationMeta;
    nvds_add_user_meta_to_frame(entry.frame, userMeta);
}

} // namespace

extern "C" FornetSegmentationMeta* fornet_segmentation_meta_create(
    unsigned int unique_id, char const* layer_name, int classes, float threshold, int order)
{
    if ((order != 0 && order != 1) || classes < 0)
    {
        return nullptr;
    }
    auto* context = new FornetSegmentationMeta{};
    context->uniqueId = unique_id;
    context->layerName = layer_name != nullptr ? layer_name : "";
    context->classes = classes;
    context->threshold = threshold;
    context->order = order;
    return context;
}

extern "C" void fornet_segmentation_meta_destroy(FornetSegmentationMeta* context)
{
    if (context != nullptr)
    {
        releaseResources(*context);
        delete context;
    }
}

extern "C" int fornet_segmentation_meta_attach(FornetSegmentationMeta* context, GstBuffer* buffer)
{
    if (context == nullptr || buffer == nullptr)
    {
        return -FORNET_SEGMENTATION_BAD_ARGUMENT;
    }
    NvDsBatchMeta* batch = gst_buffer_get_nvds_batch_meta(buffer);
    if (batch == nullptr)
    {
        return -FORNET_SEGMENTATION_NO_BATCH_META;
    }
    std::lock_guard<std::mutex> lock(context->mutex);
    std::vector<PendingFrame> pending;
    int device = 0;
    nvds_acquire_meta_lock(batch);
    int status = collectFrames(*context, batch, device, pending);
    nvds_release_meta_lock(batch);
    if (status == 0 && !pending.empty())
    {
        status = labelFrames(*context, device, pending);
    }
    if (status == 0)
    {
        nvds_acquire_meta_lock(batch);
        for (PendingFrame& entry : pending)
        {
            attach(*context, batch, entry);
        }
        nvds_release_meta_lock(batch);
    }
    for (PendingFrame const& entry : pending)
    {
        g_free(entry.classMap); // those not attached (after a failure)
    }
    return status == 0 ? static_cast<int>(pending.size()) : status;
}

extern "C" GstPadProbeReturn fornet_segmentation_meta_probe(GstPad*, GstPadProbeInfo* info, gpointer context)
{
    GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
    int const status = fornet_segmentation_meta_attach(static_cast<FornetSegmentationMeta*>(context), buffer);
    if (status < 0)
    {
        g_printerr("fornet_segmentation_meta: %s\n", fornet_segmentation_status_text(-status));
    }
    return GST_PAD_PROBE_OK;
}
