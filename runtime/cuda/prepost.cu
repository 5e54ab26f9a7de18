/*
 * FoR-Net runtime pre- and post-processing kernels (fornet.runtime.gpu_prepost launches them
 * through pycuda; fornet.runtime.cpu_prepost is the CPU implementation with the same semantics).
 *
 * Pre (one thread per engine-input pixel): uint8 BGR HWC frame of any size -> bilinear resize to
 * the engine size -> channel order of the engine -> (x / 255 - mean) / std -> written straight
 * into the engine's input buffer as NCHW float32 or float16, or (raw-input engines, whose graph
 * normalises) as NHWC uint8. The resize is OpenCV's cv::resize INTER_LINEAR for 8-bit images,
 * integer for integer: half-pixel source coordinates computed in double, 11-bit fixed-point
 * weights rounded half to even, columns clamped to the border, rows clamped by index only, and
 * the vertical pass rounded as OpenCV's vectorised path does. The normalisation is the same
 * float32 operations in the same order as fornet.calibration.preprocess, so the result equals
 * that CPU reference bit for bit wherever OpenCV takes its generic path.
 *
 * Post (one thread per frame pixel): argmax over the classes at the engine's (logit) resolution,
 * sampled at the nearest engine pixel with half-pixel centres, src = floor((2 * dst + 1) * in /
 * (2 * out)) in integers, written as uint8 labels at the frame size. Ties go to the lower class
 * and a NaN score wins (first NaN), exactly as numpy.argmax. Engines that output labels skip the
 * argmax (values outside 0..255 become 255). Optionally a colour overlay of the frame:
 * (frame * (256 - a) + colour * a + 128) >> 8 per channel, colour in BGR, a = alpha * 256.
 *
 * Kernels are extern "C" (pycuda's get_function and CuPy's RawModule find them by name). With
 * FORNET_PREPOST_HOST_REFERENCE defined, host functions that run the same per-pixel code on the
 * CPU are added; the tests compile them with nvcc into a shared library and compare them with
 * the NumPy/OpenCV implementation on machines without a GPU.
 */
#include <cuda_fp16.h>
#include <stdint.h>

namespace
{

constexpr int kCoefBits = 11; // OpenCV's INTER_RESIZE_COEF_BITS
constexpr int kCoefScale = 1 << kCoefBits;

//! The two source indices and fixed-point weights of one output coordinate.
struct Taps
{
    int i0;
    int i1;
    int w0;
    int w1;
};

__host__ __device__ inline int roundHalfEven(float value)
{
    return static_cast<int>(rintf(value));
}

//! OpenCV's source coordinate (dst + 0.5) * scale - 0.5 in double, rounded to float. The product is
//! rounded before the subtraction, as on the CPU: nvcc would otherwise fuse both into one FMA.
__host__ __device__ inline float sourceCoordinate(int dst, double scale)
{
#ifdef __CUDA_ARCH__
    return static_cast<float>(__dadd_rn(__dmul_rn(dst + 0.5, scale), -0.5));
#else
    return static_cast<float>((dst + 0.5) * scale - 0.5);
#endif
}

//! Columns: a coordinate left of the first or right of the last pixel takes that pixel alone.
__host__ __device__ inline Taps columnTaps(int dst, int in, double scale)
{
    float f = sourceCoordinate(dst, scale);
    int s = static_cast<int>(floorf(f));
    f -= static_cast<float>(s);
    if (s < 0)
    {
        f = 0.0f;
        s = 0;
    }
    if (s >= in - 1)
    {
        f = 0.0f;
        s = in - 1;
    }
    Taps taps;
    taps.i0 = s;
    taps.i1 = s + 1 < in ? s + 1 : in - 1;
    taps.w0 = roundHalfEven((1.0f - f) * kCoefScale);
    taps.w1 = roundHalfEven(f * kCoefScale);
    return taps;
}

//! Rows: the weights stay as computed and only the row indices are clamped (OpenCV's border rows).
__host__ __device__ inline Taps rowTaps(int dst, int in, double scale)
{
    float f = sourceCoordinate(dst, scale);
    int const s = static_cast<int>(floorf(f));
    f -= static_cast<float>(s);
    Taps taps;
    taps.i0 = s < 0 ? 0 : (s > in - 1 ? in - 1 : s);
    taps.i1 = s + 1 < 0 ? 0 : (s + 1 > in - 1 ? in - 1 : s + 1);
    taps.w0 = roundHalfEven((1.0f - f) * kCoefScale);
    taps.w1 = roundHalfEven(f * kCoefScale);
    return taps;
}

//! One resized uint8 channel value at (row taps, column taps) of an interleaved 3-channel frame.
__host__ __device__ inline int resizedValue(
    uint8_t const* frame, int pitch, Taps const& row, Taps const& col, int channel)
{
    uint8_t const* top = frame + static_cast<int64_t>(row.i0) * pitch;
    uint8_t const* bottom = frame + static_cast<int64_t>(row.i1) * pitch;
    int const h0 = top[col.i0 * 3 + channel] * col.w0 + top[col.i1 * 3 + channel] * col.w1;
    int const h1 = bottom[col.i0 * 3 + channel] * col.w0 + bottom[col.i1 * 3 + channel] * col.w1;
    // 16-bit high multiplies of the horizontal sums scaled down by 16, then (sum + 2) >> 2.
    int const value = (((row.w0 * (h0 >> 4)) >> 16) + ((row.w1 * (h1 >> 4)) >> 16) + 2) >> 2;
    return value < 0 ? 0 : (value > 255 ? 255 : value);
}

//! (value / 255 - mean) / std in float32, the operations of fornet.calibration.preprocess.
__host__ __device__ inline float normalised(int value, float mean, float stdev)
{
    float const scaled = static_cast<float>(value) / 255.0f;
    return (scaled - mean) / stdev;
}

//! Normalisation constants of the three engine channels (RGB order).
struct Normalisation
{
    float mean[3];
    float stdev[3];
};

__host__ __device__ inline void storeValue(float* out, int64_t index, float value)
{
    out[index] = value;
}

__host__ __device__ inline void storeValue(__half* out, int64_t index, float value)
{
    out[index] = __float2half_rn(value);
}

//! Pre-process one engine pixel into planar (NCHW) float32 / float16 output.
//! Where and how big the resize is: source and output sizes and OpenCV's scales, in / out computed as
//! OpenCV does, 1 / (out / in) in double (passed in by the caller, so no thread divides in double).
struct Resize
{
    int srcH;
    int srcW;
    int pitch; // bytes per frame row
    int dstH;
    int dstW;
    double scaleY;
    double scaleX;
};

template <typename T>
__host__ __device__ inline void prePixelPlanar(
    uint8_t const* frame, Resize const& size, T* out, int x, int y, int swapRB, Normalisation const& norm)
{
    Taps const row = rowTaps(y, size.srcH, size.scaleY);
    Taps const col = columnTaps(x, size.srcW, size.scaleX);
    int64_t const plane = static_cast<int64_t>(size.dstH) * size.dstW;
    int64_t const offset = static_cast<int64_t>(y) * size.dstW + x;
    for (int c = 0; c < 3; ++c)
    {
        int const value = resizedValue(frame, size.pitch, row, col, swapRB ? 2 - c : c);
        storeValue(out, c * plane + offset, normalised(value, norm.mean[c], norm.stdev[c]));
    }
}

//! Pre-process one engine pixel into interleaved (NHWC) uint8 output (raw-input engines).
__host__ __device__ inline void prePixelRaw(uint8_t const* frame, Resize const& size, uint8_t* out, int x, int y,
    int swapRB)
{
    Taps const row = rowTaps(y, size.srcH, size.scaleY);
    Taps const col = columnTaps(x, size.srcW, size.scaleX);
    int64_t const offset = (static_cast<int64_t>(y) * size.dstW + x) * 3;
    for (int c = 0; c < 3; ++c)
    {
        out[offset + c] = static_cast<uint8_t>(resizedValue(frame, size.pitch, row, col, swapRB ? 2 - c : c));
    }
}

//! Nearest source index with half-pixel centres: floor((2 * dst + 1) * in / (2 * out)).
__host__ __device__ inline int nearestIndex(int dst, int in, int out)
{
    int64_t const index = ((2 * static_cast<int64_t>(dst) + 1) * in) / (2 * static_cast<int64_t>(out));
    return static_cast<int>(index < in ? index : in - 1);
}

__host__ __device__ inline float toFloat(float value)
{
    return value;
}

__host__ __device__ inline float toFloat(__half value)
{
    return __half2float(value);
}

//! numpy.argmax over the classes of one pixel of planar scores: first maximum, a NaN wins.
template <typename T>
__host__ __device__ inline int argmaxAt(T const* scores, int classes, int64_t plane, int64_t offset)
{
    float best = toFloat(scores[offset]);
    int label = 0;
    for (int c = 1; c < classes && best == best; ++c)
    {
        float const value = toFloat(scores[c * plane + offset]);
        if (value > best || value != value)
        {
            best = value;
            label = c;
        }
    }
    return label;
}

template <typename T>
__host__ __device__ inline int labelValue(T value)
{
    int const label = static_cast<int>(value);
    return label < 0 || label > 255 ? 255 : label;
}

//! Blend one frame pixel with its class colour (palette: BGR triplets); out-of-palette keeps the pixel.
__host__ __device__ inline void overlayPixel(uint8_t const* frame, int framePitch, uint8_t* overlay, int dstW, int x,
    int y, int label, uint8_t const* palette, int paletteSize, int alpha256)
{
    uint8_t const* pixel = frame + static_cast<int64_t>(y) * framePitch + x * 3;
    uint8_t* out = overlay + (static_cast<int64_t>(y) * dstW + x) * 3;
    for (int c = 0; c < 3; ++c)
    {
        int const base = pixel[c];
        out[c] = label < paletteSize
            ? static_cast<uint8_t>((base * (256 - alpha256) + palette[label * 3 + c] * alpha256 + 128) >> 8)
            : static_cast<uint8_t>(base);
    }
}

//! Arguments of every post-processing variant.
struct PostArgs
{
    int classes;
    int srcH;
    int srcW;
    uint8_t* labels;
    int dstH;
    int dstW;
    uint8_t const* frame; // frame-size BGR image for the overlay, or null
    int framePitch;
    uint8_t* overlay; // frame-size BGR output, or null for no overlay
    uint8_t const* palette;
    int paletteSize;
    int alpha256;
};

//! Post-process one frame pixel: label from scores (`fromScores`) or from an engine label map.
template <typename T, bool fromScores>
__host__ __device__ inline void postPixel(T const* source, PostArgs const& args, int x, int y)
{
    int const sy = nearestIndex(y, args.srcH, args.dstH);
    int const sx = nearestIndex(x, args.srcW, args.dstW);
    int64_t const plane = static_cast<int64_t>(args.srcH) * args.srcW;
    int64_t const offset = static_cast<int64_t>(sy) * args.srcW + sx;
    int const label = fromScores ? argmaxAt(source, args.classes, plane, offset) : labelValue(source[offset]);
    args.labels[static_cast<int64_t>(y) * args.dstW + x] = static_cast<uint8_t>(label);
    if (args.overlay != nullptr)
    {
        overlayPixel(args.frame, args.framePitch, args.overlay, args.dstW, x, y, label, args.palette,
            args.paletteSize, args.alpha256);
    }
}

__host__ __device__ inline Resize makeResize(int srcH, int srcW, int pitch, int dstH, int dstW, double scaleY,
    double scaleX)
{
    Resize size;
    size.srcH = srcH;
    size.srcW = srcW;
    size.pitch = pitch;
    size.dstH = dstH;
    size.dstW = dstW;
    size.scaleY = scaleY;
    size.scaleX = scaleX;
    return size;
}

__host__ __device__ inline Normalisation makeNormalisation(
    float mean0, float mean1, float mean2, float std0, float std1, float std2)
{
    Normalisation norm;
    norm.mean[0] = mean0;
    norm.mean[1] = mean1;
    norm.mean[2] = mean2;
    norm.stdev[0] = std0;
    norm.stdev[1] = std1;
    norm.stdev[2] = std2;
    return norm;
}

__host__ __device__ inline PostArgs makePostArgs(int classes, int srcH, int srcW, uint8_t* labels, int dstH, int dstW,
    uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette, int paletteSize, int alpha256)
{
    PostArgs args;
    args.classes = classes;
    args.srcH = srcH;
    args.srcW = srcW;
    args.labels = labels;
    args.dstH = dstH;
    args.dstW = dstW;
    args.frame = frame;
    args.framePitch = framePitch;
    args.overlay = overlay;
    args.palette = palette;
    args.paletteSize = paletteSize;
    args.alpha256 = alpha256;
    return args;
}

} // namespace

// ---------------------------------------------------------------------------------- kernels
// Launch with a 2-D grid covering the output (engine input for pre, frame for post); scalar
// arguments only, so pycuda's prepared calls take them as "P" (pointer), "i" (int32), "d" (double)
// and "f" (float32). scaleY = 1 / (dstH / srcH) and scaleX = 1 / (dstW / srcW), in double.

#define FORNET_PRE_PLANAR_KERNEL(NAME, TYPE)                                                                           \
    extern "C" __global__ void NAME(uint8_t const* frame, int srcH, int srcW, int pitch, TYPE* out, int dstH,        \
        int dstW, double scaleY, double scaleX, int swapRB, float mean0, float mean1, float mean2, float std0,         \
        float std1, float std2)                                                                                        \
    {                                                                                                                  \
        int const x = blockIdx.x * blockDim.x + threadIdx.x;                                                           \
        int const y = blockIdx.y * blockDim.y + threadIdx.y;                                                           \
        if (x < dstW && y < dstH)                                                                                      \
        {                                                                                                              \
            prePixelPlanar(frame, makeResize(srcH, srcW, pitch, dstH, dstW, scaleY, scaleX), out, x, y, swapRB,        \
                makeNormalisation(mean0, mean1, mean2, std0, std1, std2));                                             \
        }                                                                                                              \
    }

FORNET_PRE_PLANAR_KERNEL(fornet_pre_nchw_f32, float)
FORNET_PRE_PLANAR_KERNEL(fornet_pre_nchw_f16, __half)

extern "C" __global__ void fornet_pre_nhwc_u8(uint8_t const* frame, int srcH, int srcW, int pitch, uint8_t* out,
    int dstH, int dstW, double scaleY, double scaleX, int swapRB)
{
    int const x = blockIdx.x * blockDim.x + threadIdx.x;
    int const y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < dstW && y < dstH)
    {
        prePixelRaw(frame, makeResize(srcH, srcW, pitch, dstH, dstW, scaleY, scaleX), out, x, y, swapRB);
    }
}

#define FORNET_POST_KERNEL(NAME, TYPE, FROM_SCORES)                                                                    \
    extern "C" __global__ void NAME(TYPE const* source, int classes, int srcH, int srcW, uint8_t* labels, int dstH,  \
        int dstW, uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette, int paletteSize,      \
        int alpha256)                                                                                                  \
    {                                                                                                                  \
        int const x = blockIdx.x * blockDim.x + threadIdx.x;                                                           \
        int const y = blockIdx.y * blockDim.y + threadIdx.y;                                                           \
        if (x < dstW && y < dstH)                                                                                      \
        {                                                                                                              \
            postPixel<TYPE, FROM_SCORES>(source,                                                                       \
                makePostArgs(classes, srcH, srcW, labels, dstH, dstW, frame, framePitch, overlay, palette,            \
                    paletteSize, alpha256),                                                                            \
                x, y);                                                                                                 \
        }                                                                                                              \
    }

FORNET_POST_KERNEL(fornet_post_logits_f32, float, true)
FORNET_POST_KERNEL(fornet_post_logits_f16, __half, true)
FORNET_POST_KERNEL(fornet_post_labels_u8, uint8_t, false)
FORNET_POST_KERNEL(fornet_post_labels_i32, int32_t, false)

#ifdef FORNET_PREPOST_HOST_REFERENCE
// ------------------------------------------------------------- host reference (tests only)
static double resizeScale(int in, int out)
{
    return 1.0 / (static_cast<double>(out) / static_cast<double>(in));
}

// out_type: 0 float32 NCHW, 1 float16 NCHW (raw half bits), 2 uint8 NHWC.
extern "C" int fornet_pre_host(uint8_t const* frame, int srcH, int srcW, int pitch, void* out, int dstH, int dstW,
    int outType, int swapRB, float const* mean, float const* stdev)
{
    Normalisation const norm = makeNormalisation(mean[0], mean[1], mean[2], stdev[0], stdev[1], stdev[2]);
    Resize const size = makeResize(srcH, srcW, pitch, dstH, dstW, resizeScale(srcH, dstH), resizeScale(srcW, dstW));
    for (int y = 0; y < dstH; ++y)
    {
        for (int x = 0; x < dstW; ++x)
        {
            if (outType == 0)
            {
                prePixelPlanar(frame, size, static_cast<float*>(out), x, y, swapRB, norm);
            }
            else if (outType == 1)
            {
                prePixelPlanar(frame, size, static_cast<__half*>(out), x, y, swapRB, norm);
            }
            else if (outType == 2)
            {
                prePixelRaw(frame, size, static_cast<uint8_t*>(out), x, y, swapRB);
            }
            else
            {
                return 1;
            }
        }
    }
    return 0;
}

// source_type: 0 float32 scores, 1 float16 scores, 2 uint8 labels, 3 int32 labels.
extern "C" int fornet_post_host(void const* source, int sourceType, int classes, int srcH, int srcW, uint8_t* labels,
    int dstH, int dstW, uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette,
    int paletteSize, int alpha256)
{
    PostArgs const args = makePostArgs(
        classes, srcH, srcW, labels, dstH, dstW, frame, framePitch, overlay, palette, paletteSize, alpha256);
    for (int y = 0; y < dstH; ++y)
    {
        for (int x = 0; x < dstW; ++x)
        {
            switch (sourceType)
            {
            case 0: postPixel<float, true>(static_cast<float const*>(source), args, x, y); break;
            case 1: postPixel<__half, true>(static_cast<__half const*>(source), args, x, y); break;
            case 2: postPixel<uint8_t, false>(static_cast<uint8_t const*>(source), args, x, y); break;
            case 3: postPixel<int32_t, false>(static_cast<int32_t const*>(source), args, x, y); break;
            default: return 1;
            }
        }
    }
    return 0;
}
#endif
