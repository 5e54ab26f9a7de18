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
 * Post from class scores, two kernels: the labels at frame size are the argmax of the scores
 * upsampled bilinearly (half-pixel centres, align_corners=False), with the arithmetic fornet.runtime.
 * cpu_prepost defines: per output coordinate src = max((dst + 0.5) * (in / out) - 0.5, 0) in double,
 * i0 = min(floor(src), in - 1), i1 = min(i0 + 1, in - 1), w1 = float(src - i0), w0 = 1 - w1; the value
 * wy0 * (wx0 * s00 + wx1 * s01) + wy1 * (wx0 * s10 + wx1 * s11), every operation rounded to float32
 * (no fused multiply-add); at equal sizes the plain argmax. fornet_post_certain_* (one thread per
 * network pixel) writes the argmax, its margin over the runner-up and its magnitude (margin -1 where a
 * score is NaN, infinite or beyond 2^100). fornet_post_logits_* (one thread per frame pixel) gives a
 * pixel the label its four network neighbours share when their smallest margin exceeds 2^-20 of their
 * largest magnitude plus 2^-126 (float32 rounding cannot overturn it: a convex combination keeps a
 * common argmax), and otherwise interpolates every class and takes the argmax: the same labels, bit for
 * bit, as the full resize-then-argmax. Ties go to the lower class and a NaN score wins (first NaN),
 * exactly as numpy.argmax. Engines that output labels are sampled at the nearest engine pixel with
 * half-pixel centres, src = floor((2 * dst + 1) * in / (2 * out)) in integers (values outside 0..255
 * become 255). Optionally a colour overlay of the frame:
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

//! float32 product and sum rounded on their own (never fused into a multiply-add), as NumPy computes them.
__host__ __device__ inline float mulRn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

__host__ __device__ inline float addRn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

//! The two source indices and float32 weights of one output coordinate of the bilinear score resize.
struct LinearTap
{
    int i0;
    int i1;
    float w0;
    float w1;
};

//! Half-pixel bilinear tap: src = max((dst + 0.5) * scale - 0.5, 0) in double (scale = in / out).
__host__ __device__ inline LinearTap linearTap(int dst, int in, double scale)
{
#ifdef __CUDA_ARCH__
    double src = __dadd_rn(__dmul_rn(dst + 0.5, scale), -0.5);
#else
    double src = (dst + 0.5) * scale - 0.5;
#endif
    src = src < 0.0 ? 0.0 : src;
    int i0 = static_cast<int>(floor(src));
    i0 = i0 > in - 1 ? in - 1 : i0;
    LinearTap tap;
    tap.i0 = i0;
    tap.i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    tap.w1 = static_cast<float>(src - i0);
    tap.w0 = addRn(1.0f, -tap.w1);
    return tap;
}

//! Scores beyond this magnitude (or NaN, infinite) make their network pixel uncertain (margin -1).
constexpr float kSafeMagnitude = 1.2676506002282294e30f; // 2^100
constexpr float kMarginRelative = 9.5367431640625e-07f;  // 2^-20
constexpr float kMarginAbsolute = 1.1754943508222875e-38f; // 2^-126, the smallest normal float32

//! One network pixel's argmax, its margin over the runner-up and its magnitude (see the file comment).
template <typename T>
__host__ __device__ inline void certainPixel(T const* scores, int classes, int64_t plane, int64_t offset,
    uint8_t* labels, float* margins, float* magnitudes)
{
    float best = toFloat(scores[offset]);
    float second = -INFINITY;
    int label = 0;
    bool moderate = best >= -kSafeMagnitude && best <= kSafeMagnitude;
    for (int c = 1; c < classes; ++c)
    {
        float const value = toFloat(scores[c * plane + offset]);
        moderate = moderate && value >= -kSafeMagnitude && value <= kSafeMagnitude;
        if (value > best)
        {
            second = best;
            best = value;
            label = c;
        }
        else if (value > second)
        {
            second = value;
        }
    }
    labels[offset] = static_cast<uint8_t>(label);
    margins[offset] = moderate ? addRn(best, -second) : -1.0f;
    magnitudes[offset] = moderate ? fabsf(best) : 0.0f;
}

//! numpy.argmax over the classes of the bilinearly interpolated scores of one frame pixel.
template <typename T>
__host__ __device__ inline int interpolatedArgmax(T const* scores, int classes, int64_t plane, LinearTap const& row,
    LinearTap const& col, int srcW)
{
    int64_t const top = static_cast<int64_t>(row.i0) * srcW;
    int64_t const bottom = static_cast<int64_t>(row.i1) * srcW;
    float best = 0.0f;
    int label = 0;
    for (int c = 0; c < classes && best == best; ++c)
    {
        T const* s = scores + c * plane;
        float const upper = addRn(mulRn(toFloat(s[top + col.i0]), col.w0), mulRn(toFloat(s[top + col.i1]), col.w1));
        float const lower
            = addRn(mulRn(toFloat(s[bottom + col.i0]), col.w0), mulRn(toFloat(s[bottom + col.i1]), col.w1));
        float const value = addRn(mulRn(upper, row.w0), mulRn(lower, row.w1));
        if (c == 0 || value > best || value != value)
        {
            best = value;
            label = c;
        }
    }
    return label;
}

//! The label of one frame pixel from class scores: the shared certain label of its cell, else interpolated.
template <typename T>
__host__ __device__ inline int scoresLabel(T const* scores, int classes, int srcH, int srcW, uint8_t const* certain,
    float const* margins, float const* magnitudes, int dstH, int dstW, double scaleY, double scaleX, int x, int y)
{
    int64_t const plane = static_cast<int64_t>(srcH) * srcW;
    if (srcH == dstH && srcW == dstW)
    {
        return argmaxAt(scores, classes, plane, static_cast<int64_t>(y) * srcW + x);
    }
    LinearTap const row = linearTap(y, srcH, scaleY);
    LinearTap const col = linearTap(x, srcW, scaleX);
    int64_t const corners[4] = {static_cast<int64_t>(row.i0) * srcW + col.i0,
        static_cast<int64_t>(row.i0) * srcW + col.i1, static_cast<int64_t>(row.i1) * srcW + col.i0,
        static_cast<int64_t>(row.i1) * srcW + col.i1};
    int const label = certain[corners[0]];
    float smallestMargin = margins[corners[0]];
    float largestMagnitude = magnitudes[corners[0]];
    bool agreed = true;
    for (int k = 1; k < 4; ++k)
    {
        agreed = agreed && certain[corners[k]] == label;
        smallestMargin = fminf(smallestMargin, margins[corners[k]]);
        largestMagnitude = fmaxf(largestMagnitude, magnitudes[corners[k]]);
    }
    if (agreed && smallestMargin > addRn(mulRn(largestMagnitude, kMarginRelative), kMarginAbsolute))
    {
        return label;
    }
    return interpolatedArgmax(scores, classes, plane, row, col, srcW);
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
    uint8_t const* certain; // per network pixel (scores only): fornet_post_certain_*'s outputs
    float const* margins;
    float const* magnitudes;
    double scaleY; // srcH / dstH and srcW / dstW in double (scores only)
    double scaleX;
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
    int label;
    if (fromScores)
    {
        label = scoresLabel(source, args.classes, args.srcH, args.srcW, args.certain, args.margins, args.magnitudes,
            args.dstH, args.dstW, args.scaleY, args.scaleX, x, y);
    }
    else
    {
        int const sy = nearestIndex(y, args.srcH, args.dstH);
        int const sx = nearestIndex(x, args.srcW, args.dstW);
        label = labelValue(source[static_cast<int64_t>(sy) * args.srcW + sx]);
    }
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
    args.certain = nullptr;
    args.margins = nullptr;
    args.magnitudes = nullptr;
    args.scaleY = 1.0;
    args.scaleX = 1.0;
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

__host__ __device__ inline PostArgs withScoreCells(PostArgs args, uint8_t const* certain, float const* margins,
    float const* magnitudes, double scaleY, double scaleX)
{
    args.certain = certain;
    args.margins = margins;
    args.magnitudes = magnitudes;
    args.scaleY = scaleY;
    args.scaleX = scaleX;
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

// Scores, first pass: one thread per network pixel.
#define FORNET_POST_CERTAIN_KERNEL(NAME, TYPE)                                                                         \
    extern "C" __global__ void NAME(                                                                                   \
        TYPE const* scores, int classes, int srcH, int srcW, uint8_t* certain, float* margins, float* magnitudes)      \
    {                                                                                                                  \
        int const x = blockIdx.x * blockDim.x + threadIdx.x;                                                           \
        int const y = blockIdx.y * blockDim.y + threadIdx.y;                                                           \
        if (x < srcW && y < srcH)                                                                                      \
        {                                                                                                              \
            certainPixel(scores, classes, static_cast<int64_t>(srcH) * srcW, static_cast<int64_t>(y) * srcW + x,       \
                certain, margins, magnitudes);                                                                         \
        }                                                                                                              \
    }

FORNET_POST_CERTAIN_KERNEL(fornet_post_certain_f32, float)
FORNET_POST_CERTAIN_KERNEL(fornet_post_certain_f16, __half)

// Scores, second pass: one thread per frame pixel; scaleY = srcH / dstH, scaleX = srcW / dstW in double.
#define FORNET_POST_LOGITS_KERNEL(NAME, TYPE)                                                                          \
    extern "C" __global__ void NAME(TYPE const* scores, int classes, int srcH, int srcW, uint8_t const* certain,      \
        float const* margins, float const* magnitudes, double scaleY, double scaleX, uint8_t* labels, int dstH,        \
        int dstW, uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette, int paletteSize,      \
        int alpha256)                                                                                                  \
    {                                                                                                                  \
        int const x = blockIdx.x * blockDim.x + threadIdx.x;                                                           \
        int const y = blockIdx.y * blockDim.y + threadIdx.y;                                                           \
        if (x < dstW && y < dstH)                                                                                      \
        {                                                                                                              \
            PostArgs const args = makePostArgs(classes, srcH, srcW, labels, dstH, dstW, frame, framePitch, overlay,   \
                palette, paletteSize, alpha256);                                                                       \
            postPixel<TYPE, true>(scores, withScoreCells(args, certain, margins, magnitudes, scaleY, scaleX), x, y);  \
        }                                                                                                              \
    }

FORNET_POST_LOGITS_KERNEL(fornet_post_logits_f32, float)
FORNET_POST_LOGITS_KERNEL(fornet_post_logits_f16, __half)

#define FORNET_POST_LABELS_KERNEL(NAME, TYPE)                                                                          \
    extern "C" __global__ void NAME(TYPE const* source, int classes, int srcH, int srcW, uint8_t* labels, int dstH,  \
        int dstW, uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette, int paletteSize,      \
        int alpha256)                                                                                                  \
    {                                                                                                                  \
        int const x = blockIdx.x * blockDim.x + threadIdx.x;                                                           \
        int const y = blockIdx.y * blockDim.y + threadIdx.y;                                                           \
        if (x < dstW && y < dstH)                                                                                      \
        {                                                                                                              \
            postPixel<TYPE, false>(source,                                                                             \
                makePostArgs(classes, srcH, srcW, labels, dstH, dstW, frame, framePitch, overlay, palette,            \
                    paletteSize, alpha256),                                                                            \
                x, y);                                                                                                 \
        }                                                                                                              \
    }

FORNET_POST_LABELS_KERNEL(fornet_post_labels_u8, uint8_t)
FORNET_POST_LABELS_KERNEL(fornet_post_labels_i32, int32_t)

#ifdef FORNET_PREPOST_HOST_REFERENCE
// ------------------------------------------------------------- host reference (tests only)
#include <vector>

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

template <typename T>
static void certainHost(T const* scores, int classes, int srcH, int srcW, uint8_t* certain, float* margins,
    float* magnitudes)
{
    for (int64_t offset = 0; offset < static_cast<int64_t>(srcH) * srcW; ++offset)
    {
        certainPixel(scores, classes, static_cast<int64_t>(srcH) * srcW, offset, certain, margins, magnitudes);
    }
}

// source_type: 0 float32 scores, 1 float16 scores, 2 uint8 labels, 3 int32 labels. Scores run both passes.
extern "C" int fornet_post_host(void const* source, int sourceType, int classes, int srcH, int srcW, uint8_t* labels,
    int dstH, int dstW, uint8_t const* frame, int framePitch, uint8_t* overlay, uint8_t const* palette,
    int paletteSize, int alpha256)
{
    PostArgs args = makePostArgs(
        classes, srcH, srcW, labels, dstH, dstW, frame, framePitch, overlay, palette, paletteSize, alpha256);
    std::vector<uint8_t> certain(static_cast<size_t>(srcH) * srcW);
    std::vector<float> margins(certain.size());
    std::vector<float> magnitudes(certain.size());
    if (sourceType == 0)
    {
        certainHost(static_cast<float const*>(source), classes, srcH, srcW, certain.data(), margins.data(),
            magnitudes.data());
    }
    else if (sourceType == 1)
    {
        certainHost(static_cast<__half const*>(source), classes, srcH, srcW, certain.data(), margins.data(),
            magnitudes.data());
    }
    args = withScoreCells(args, certain.data(), margins.data(), magnitudes.data(),
        static_cast<double>(srcH) / static_cast<double>(dstH), static_cast<double>(srcW) / static_cast<double>(dstW));
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
