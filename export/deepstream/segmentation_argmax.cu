/*
 * nvinfer's segmentation parser on the GPU, for DeepStream (fornet export --deepstream ships this
 * file in the package as fornet_segmentation_argmax.cu).
 *
 * nvinfer's network-type=2 parser (fillSegmentationOutput) labels each pixel on the CPU: a
 * C x H x W float copy to the host (76 bytes per pixel for 19 classes) and a 19-step loop per
 * pixel. Run the scores graph with network-type=100 and output-tensor-meta=1 instead, and call
 * fornet_segmentation_argmax() from a probe on the output layer's device buffer
 * (NvDsInferTensorMeta::out_buf_ptrs_dev[0]): one thread per pixel computes the label with
 * nvinfer's own rule, and only the int32 class map (4 bytes per pixel) need leave the GPU.
 *
 * The rule, exactly as nvinfer's loop: max = -1, label = -1; for each class c in order, if
 * score[c] > max and score[c] > threshold then label = c, max = score[c]. So a pixel gets the
 * first class with the largest score among those above the threshold (and above -1), else -1;
 * NaN scores never win. fornet/export/deepstream/parser.py is the NumPy form the package check
 * runs; the tests compile this file with -DFORNET_SEGMENTATION_ARGMAX_HOST_REFERENCE (the same
 * per-pixel function on the CPU) and compare the two on machines without a GPU.
 *
 * Plain CUDA runtime API and a C ABI: no DeepStream header is needed (none is published outside
 * the DeepStream SDK), so a C/C++ probe or Python (ctypes) can call it with the pointers it reads
 * from the tensor meta. Build on the device (sm_87: Orin; sm_110: Thor; your dGPU's otherwise):
 *
 *     nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -arch=sm_87 \
 *         -o libfornet_segmentation_argmax.so fornet_segmentation_argmax.cu
 */
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

/*
 * Label ``batch`` frames of scores on ``stream`` (asynchronous; synchronise before reading
 * ``classMap``). ``scores``: device memory, float32 (dtype 0) or float16 (dtype 1), frames one
 * after another, each classes x height x width (order 0, segmentation-output-order=0) or
 * height x width x classes (order 1). ``classMap``: device memory for batch x height x width
 * int32 labels (-1: unlabelled). Returns a cudaError_t: cudaSuccess, cudaErrorInvalidValue for
 * bad arguments, or the launch's error.
 */
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
