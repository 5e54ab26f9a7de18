/*
 * nvinfer's segmentation parser on the GPU, for DeepStream (fornet export --deepstream ships this
 * file in the package as fornet_segmentation_argmax.cu, with fornet_segmentation.h, its interface).
 *
 * nvinfer's network-type=2 parser (fillSegmentationOutput) labels each pixel on the CPU: a
 * C x H x W float copy to the host (76 bytes per pixel for 19 classes) and a 19-step loop per
 * pixel. Run the scores graph with network-type=100 and output-tensor-meta=1 instead, and label
 * the output layer's device buffer (NvDsInferTensorMeta::out_buf_ptrs_dev) with
 * fornet_segmentation_argmax(): one thread per pixel computes the label with nvinfer's own rule,
 * and only the int32 class map (4 bytes per pixel) need leave the GPU. fornet_segmentation_meta.cpp
 * does that from a pad probe and attaches the NvDsInferSegmentationMeta nvinfer would.
 *
 * The rule, exactly as nvinfer's loop: max = -1, label = -1; for each class c in order, if
 * score[c] > max and score[c] > threshold then label = c, max = score[c]. So a pixel gets the
 * first class with the largest score among those above the threshold (and above -1), else -1;
 * NaN scores never win. fornet/export/deepstream/parser.py is the NumPy form the package check
 * runs; the tests compile this file with -DFORNET_SEGMENTATION_ARGMAX_HOST_REFERENCE (the same
 * per-pixel function on the CPU) and compare the two on machines without a GPU.
 *
 * Plain CUDA runtime API and a C ABI, no DeepStream header: fornet_segmentation_layer_shape() turns an
 * output layer's data type and dims (NvDsInferLayerInfo, passed as plain numbers) into the kernel's
 * arguments, so a C/C++ probe or Python (ctypes) can call the launcher with what it reads from the
 * tensor meta. Build alone on the device (sm_87: Orin; sm_110: Thor; your dGPU's otherwise):
 *
 *     nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -arch=sm_87 \
 *         -o libfornet_segmentation_argmax.so fornet_segmentation_argmax.cu
 *
 * or with fornet_segmentation_meta.cpp into one library (the package README has the command).
 */
#include "fornet_segmentation.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace
{

//! nvinfer's starting maximum: a score must also exceed it.
constexpr float kStartScore = -1.0f;
//! The label of a pixel none of whose scores passes.
constexpr int32_t kUnlabelled = -1;
constexpr int kThreads = 256;

__host__ __device__ inline float toFloat(float value)
{
    return value;
}

__host__ __device__ inline float toFloat(__half value)
{
    return __half2float(value);
}

//! Where one frame's scores are: classes x height x width (order 0) or height x width x classes (order 1).
struct ScoreLayout
{
    int classes;
    int height;
    int width;
    int order;
};

//! The label of pixel ``pixel`` (y * width + x) of one frame whose scores start at ``frame``.
template <typename T>
__host__ __device__ inline int32_t parsePixel(T const* frame, ScoreLayout const& layout, long long pixel, float threshold)
{
    long long const planeSize = static_cast<long long>(layout.height) * layout.width;
    T const* first = layout.order == 0 ? frame + pixel : frame + pixel * layout.classes;
    long long const classStride = layout.order == 0 ? planeSize : 1;
    float best = kStartScore;
    int32_t label = kUnlabelled;
    for (int c = 0; c < layout.classes; ++c)
    {
        float const score = toFloat(first[c * classStride]);
        if (score > best && score > threshold)
        {
            best = score;
            label = c;
        }
    }
    return label;
}

template <typename T>
__global__ void segmentationArgmax(
    T const* scores, int batch, ScoreLayout layout, float threshold, int32_t* classMap)
{
    long long const planeSize = static_cast<long long>(layout.height) * layout.width;
    long long const index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= planeSize * batch)
    {
        return;
    }
    long long const frame = index / planeSize;
    long long const pixel = index - frame * planeSize;
    classMap[index] = parsePixel(scores + frame * planeSize * layout.classes, layout, pixel, threshold);
}

bool validArguments(void const* scores, int dtype, int batch, ScoreLayout const& layout, int32_t const* classMap)
{
    return scores != nullptr && classMap != nullptr && (dtype == 0 || dtype == 1) && batch > 0
        && layout.classes > 0 && layout.height > 0 && layout.width > 0 && (layout.order == 0 || layout.order == 1);
}

} // namespace

// Declared and documented in fornet_segmentation.h.
extern "C" int fornet_segmentation_argmax(void const* scores, int dtype, int batch, int classes, int height,
    int width, int order, float threshold, int32_t* classMap, cudaStream_t stream)
{
    ScoreLayout const layout{classes, height, width, order};
    if (!validArguments(scores, dtype, batch, layout, classMap))
    {
        return static_cast<int>(cudaErrorInvalidValue);
    }
    long long const total = static_cast<long long>(height) * width * batch;
    unsigned int const blocks = static_cast<unsigned int>((total + kThreads - 1) / kThreads);
    if (dtype == 0)
    {
        segmentationArgmax<<<blocks, kThreads, 0, stream>>>(
            static_cast<float const*>(scores), batch, layout, threshold, classMap);
    }
    else
    {
        segmentationArgmax<<<blocks, kThreads, 0, stream>>>(
            static_cast<__half const*>(scores), batch, layout, threshold, classMap);
    }
    return static_cast<int>(cudaGetLastError());
}

//! NvDsInferDataType's FLOAT and HALF (nvdsinfer.h), the layer types the kernel reads.
constexpr int kInferFloat = 0;
constexpr int kInferHalf = 1;

extern "C" int fornet_segmentation_layer_shape(int dataType, unsigned int numDims, unsigned int const* dims,
    int order, int expectedClasses, FornetScoreShape* shape)
{
    if (dataType != kInferFloat && dataType != kInferHalf)
    {
        return FORNET_SEGMENTATION_UNSUPPORTED_DATA_TYPE;
    }
    if (order != 0 && order != 1)
    {
        return FORNET_SEGMENTATION_BAD_ORDER;
    }
    if (dims == nullptr || shape == nullptr || numDims != 3)
    {
        return FORNET_SEGMENTATION_BAD_DIMS;
    }
    for (unsigned int i = 0; i < numDims; ++i)
    {
        if (dims[i] == 0 || dims[i] > static_cast<unsigned int>(INT32_MAX))
        {
            return FORNET_SEGMENTATION_BAD_DIMS;
        }
    }
    // order 0: C x H x W (nvinfer's getDimsCHWFromDims); order 1: H x W x C (getDimsHWCFromDims)
    int const classes = static_cast<int>(order == 0 ? dims[0] : dims[2]);
    if (expectedClasses > 0 && classes != expectedClasses)
    {
        return FORNET_SEGMENTATION_CLASS_MISMATCH;
    }
    shape->dtype = dataType == kInferFloat ? 0 : 1;
    shape->classes = classes;
    shape->height = static_cast<int>(order == 0 ? dims[1] : dims[0]);
    shape->width = static_cast<int>(order == 0 ? dims[2] : dims[1]);
    return FORNET_SEGMENTATION_OK;
}

extern "C" char const* fornet_segmentation_status_text(int status)
{
    switch (status)
    {
    case FORNET_SEGMENTATION_OK: return "ok";
    case FORNET_SEGMENTATION_UNSUPPORTED_DATA_TYPE:
        return "the output layer is neither FP32 nor FP16: export the scores graph (probabilities) for it";
    case FORNET_SEGMENTATION_BAD_DIMS:
        return "the output layer is not C x H x W or H x W x C: name the scores layer (probabilities)";
    case FORNET_SEGMENTATION_BAD_ORDER: return "segmentation-output-order must be 0 (C x H x W) or 1 (H x W x C)";
    case FORNET_SEGMENTATION_CLASS_MISMATCH:
        return "the output layer's class count differs from num-detected-classes in the nvinfer config";
    case FORNET_SEGMENTATION_NO_BATCH_META:
        return "the buffer has no NvDsBatchMeta: put the probe after nvstreammux and nvinfer";
    case FORNET_SEGMENTATION_NO_LAYER:
        return "nvinfer's tensor meta has no such output layer: check output-blob-names in the nvinfer config";
    case FORNET_SEGMENTATION_CUDA_ERROR: return "a CUDA call failed (see the message printed with it)";
    case FORNET_SEGMENTATION_BAD_ARGUMENT: return "a null context or buffer was passed";
    default: return "unknown status";
    }
}

#ifdef FORNET_SEGMENTATION_ARGMAX_HOST_REFERENCE
// ------------------------------------------------------------- host reference (tests only)
// The same per-pixel function on the CPU, over host memory; same arguments and return values.
extern "C" int fornet_segmentation_argmax_host(void const* scores, int dtype, int batch, int classes, int height,
    int width, int order, float threshold, int32_t* classMap)
{
    ScoreLayout const layout{classes, height, width, order};
    if (!validArguments(scores, dtype, batch, layout, classMap))
    {
        return static_cast<int>(cudaErrorInvalidValue);
    }
    long long const planeSize = static_cast<long long>(height) * width;
    for (long long frame = 0; frame < batch; ++frame)
    {
        for (long long pixel = 0; pixel < planeSize; ++pixel)
        {
            long long const offset = frame * planeSize * classes;
            classMap[frame * planeSize + pixel] = dtype == 0
                ? parsePixel(static_cast<float const*>(scores) + offset, layout, pixel, threshold)
                : parsePixel(static_cast<__half const*>(scores) + offset, layout, pixel, threshold);
        }
    }
    return static_cast<int>(cudaSuccess);
}
#endif
