/*
 * fornet::TopKGate CUDA kernels (see topk_gate_kernel.cuh for the contract).
 *
 * Selection: every cell gets a unique 64-bit key, (order-preserving uint32 of the score) << 32 |
 * (0xFFFFFFFF - flat index), so "larger key" is exactly "earlier in the reference order". The k-th
 * largest key is found by an MSB-first radix select, 8 bits per pass, with the digit histograms in
 * shared memory. All R selections run in the same passes; ratios whose resolved prefixes are still
 * equal share one histogram. A selection stops as soon as every key of its bucket is kept, so the
 * threshold is (resolved prefix, zero low bits) and mask_i = key >= threshold_i holds exactly ks[i]
 * ones. Distinct float scores typically finish after 3-4 passes, ties need the index passes.
 *
 * Gating: one pass over the features; each thread owns a cell and a few channels, reads the R mask
 * values once and writes all R gated outputs (coalesced along the cell axis).
 *
 * Compiles standalone with nvcc (no TensorRT headers); the kernels are extern "C" so CuPy's
 * RawModule can also fetch them by name.
 */
#include "topk_gate_kernel.cuh"

#include <cuda_fp16.h>

namespace
{

constexpr int kWarpSize = 32;
constexpr int kSelectThreads = 1024;
constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;
constexpr int kKeyBits = 64;
constexpr int kBinsPerLane = kRadixBins / kWarpSize;
constexpr int kApplyThreads = 256;
constexpr int kApplyChannels = 8;
constexpr int kMaxRatios = FORNET_TOPK_GATE_MAX_RATIOS;
constexpr unsigned kFullWarp = 0xFFFFFFFFu;

static_assert(kSelectThreads / kWarpSize >= kMaxRatios, "one warp per ratio searches the histogram");
static_assert(kRadixBins % kWarpSize == 0, "histogram bins split evenly over a warp");

//! Order-preserving map float -> uint32 matching np.lexsort on -score: NaN (any sign) below every
//! number, -0.0 equal to +0.0. Works on the bits, so flush-to-zero settings cannot change it.
__device__ __forceinline__ uint32_t scoreKey(float score)
{
    uint32_t bits = __float_as_uint(score);
    uint32_t const magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u)
    {
        return 0u;
    }
    if (magnitude == 0u)
    {
        bits = 0u;
    }
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ uint64_t cellKey(float score, int32_t index)
{
    return (static_cast<uint64_t>(scoreKey(score)) << 32) | static_cast<uint64_t>(0xFFFFFFFFu - static_cast<uint32_t>(index));
}

//! Bits of `key` above the digit that starts at `shift` (all keys agree when nothing is above).
__device__ __forceinline__ bool samePrefix(uint64_t key, uint64_t prefix, int shift)
{
    int const high = shift + kRadixBits;
    return high >= kKeyBits || (key >> high) == (prefix >> high);
}

//! One warp: find the digit holding rank `need` (1-based, descending) in a 256-bin histogram.
//! Returns the digit; `before` gets the count of keys in higher digits, `count` the bin's count.
__device__ __forceinline__ int findDigit(uint32_t const* hist, uint32_t need, uint32_t& before, uint32_t& count)
{
    int const lane = threadIdx.x % kWarpSize;
    int const top = kRadixBins - 1 - lane * kBinsPerLane; // lane 0 owns the highest digits
    uint32_t chunk = 0;
#pragma unroll
    for (int j = 0; j < kBinsPerLane; ++j)
    {
        chunk += hist[top - j];
    }
    uint32_t inclusive = chunk;
#pragma unroll
    for (int offset = 1; offset < kWarpSize; offset <<= 1)
    {
        uint32_t const other = __shfl_up_sync(kFullWarp, inclusive, offset);
        if (lane >= offset)
        {
            inclusive += other;
        }
    }
    uint32_t const exclusive = inclusive - chunk;
    unsigned const owner = __ballot_sync(kFullWarp, exclusive < need && need <= inclusive);
    int const src = __ffs(static_cast<int>(owner)) - 1;
    int digit = 0;
    uint32_t cumulative = exclusive;
    uint32_t binCount = 0;
    if (lane == src)
    {
        for (int j = 0; j < kBinsPerLane; ++j)
        {
            binCount = hist[top - j];
            if (cumulative + binCount >= need)
            {
                digit = top - j;
                break;
            }
            cumulative += binCount;
        }
    }
    digit = __shfl_sync(kFullWarp, digit, src);
    before = __shfl_sync(kFullWarp, cumulative, src);
    count = __shfl_sync(kFullWarp, binCount, src);
    return digit;
}

template <typename T>
__device__ __forceinline__ float toFloat(T value);

template <>
__device__ __forceinline__ float toFloat<float>(float value)
{
    return value;
}

template <>
__device__ __forceinline__ float toFloat<__half>(__half value)
{
    return __half2float(value);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float value);

template <>
__device__ __forceinline__ float fromFloat<float>(float value)
{
    return value;
}

template <>
__device__ __forceinline__ __half fromFloat<__half>(float value)
{
    return __float2half_rn(value); // exact: value is a half times 0 or 1
}

template <typename T>
__device__ __forceinline__ void applyGate(
    T const* __restrict__ features, float const* __restrict__ masks, FornetTopKGateOutputs out, int32_t channels,
    FornetTopKGateParams params)
{
    int32_t const n = params.num_cells;
    int32_t const numRatios = params.num_ratios;
    int32_t const cell = static_cast<int32_t>(blockIdx.x) * kApplyThreads + static_cast<int32_t>(threadIdx.x);
    if (cell >= n)
    {
        return;
    }
    size_t const image = blockIdx.z;
    float keep[kMaxRatios];
#pragma unroll
    for (int r = 0; r < kMaxRatios; ++r)
    {
        keep[r] = r < numRatios ? masks[(image * numRatios + r) * n + cell] : 0.0F;
    }
    int32_t const firstChannel = static_cast<int32_t>(blockIdx.y) * kApplyChannels;
    int32_t const lastChannel = min(firstChannel + kApplyChannels, channels);
    for (int32_t c = firstChannel; c < lastChannel; ++c)
    {
        size_t const offset = (image * channels + c) * n + cell;
        float const value = toFloat<T>(features[offset]);
#pragma unroll
        for (int r = 0; r < kMaxRatios; ++r)
        {
            if (r < numRatios)
            {
                static_cast<T*>(out.gated[r])[offset] = fromFloat<T>(value * keep[r]);
            }
        }
    }
}

bool validArguments(void const* features, float const* scores, void* const* gated, float const* masks,
    int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t const* ks, int32_t numRatios,
    int32_t featureType)
{
    if (features == nullptr || scores == nullptr || gated == nullptr || masks == nullptr || ks == nullptr)
    {
        return false;
    }
    if (batch < 0 || channels < 1 || height < 1 || width < 1 || numRatios < 1 || numRatios > kMaxRatios)
    {
        return false;
    }
    if (featureType != FORNET_TOPK_GATE_FLOAT32 && featureType != FORNET_TOPK_GATE_FLOAT16)
    {
        return false;
    }
    int64_t const cells = static_cast<int64_t>(height) * width;
    if (cells > INT32_MAX || batch > 65535 || (channels + kApplyChannels - 1) / kApplyChannels > 65535)
    {
        return false;
    }
    for (int32_t r = 0; r < numRatios; ++r)
    {
        int32_t const lower = r == 0 ? 1 : ks[r - 1];
        if (ks[r] < lower || ks[r] > cells || gated[r] == nullptr)
        {
            return false;
        }
    }
    return true;
}

} // namespace

extern "C" __global__ void __launch_bounds__(kSelectThreads)
    fornet_topk_gate_select(float const* __restrict__ scores, float* __restrict__ masks, FornetTopKGateParams params)
{
    __shared__ uint32_t hist[kMaxRatios][kRadixBins];
    __shared__ uint64_t prefix[kMaxRatios]; // resolved high digits; the threshold once resolved
    __shared__ uint32_t need[kMaxRatios];   // rank still wanted inside the current bucket (1-based)
    __shared__ int32_t slot[kMaxRatios];    // histogram row read by a ratio this pass, -1 once resolved
    __shared__ int32_t active;

    int32_t const n = params.num_cells;
    int32_t const numRatios = params.num_ratios;
    float const* imageScores = scores + static_cast<size_t>(blockIdx.x) * n;
    float* imageMasks = masks + static_cast<size_t>(blockIdx.x) * numRatios * n;
    int const lane = threadIdx.x % kWarpSize;
    int const warp = threadIdx.x / kWarpSize;

    if (threadIdx.x < numRatios)
    {
        prefix[threadIdx.x] = 0;
        need[threadIdx.x] = static_cast<uint32_t>(params.ks[threadIdx.x]);
        slot[threadIdx.x] = 0;
    }
    __syncthreads();

    for (int shift = kKeyBits - kRadixBits; shift >= 0; shift -= kRadixBits)
    {
        if (threadIdx.x == 0)
        {
            // Unresolved ratios with equal prefixes (contiguous, thresholds are non-increasing)
            // share the histogram row of the first of them.
            int32_t count = 0;
            for (int32_t r = 0; r < numRatios; ++r)
            {
                if (slot[r] < 0)
                {
                    continue;
                }
                ++count;
                slot[r] = (r > 0 && slot[r - 1] >= 0 && prefix[r - 1] == prefix[r]) ? slot[r - 1] : r;
            }
            active = count;
        }
        for (int i = threadIdx.x; i < kMaxRatios * kRadixBins; i += kSelectThreads)
        {
            hist[i / kRadixBins][i % kRadixBins] = 0;
        }
        __syncthreads();
        if (active == 0)
        {
            break;
        }

        // Warp-uniform trip count so every lane reaches the warp-level intrinsics.
        for (int32_t base = 0; base < n; base += kSelectThreads)
        {
            int32_t const i = base + static_cast<int32_t>(threadIdx.x);
            bool const valid = i < n;
            uint64_t const key = valid ? cellKey(imageScores[i], i) : 0;
            uint32_t const digit = static_cast<uint32_t>(key >> shift) & (kRadixBins - 1);
            for (int32_t r = 0; r < numRatios; ++r)
            {
                if (slot[r] != r)
                {
                    continue; // resolved, or reads another ratio's row
                }
                bool const counts = valid && samePrefix(key, prefix[r], shift);
                unsigned const members = __ballot_sync(kFullWarp, counts);
                if (counts)
                {
                    unsigned const peers = __match_any_sync(members, digit);
                    if (lane == __ffs(static_cast<int>(peers)) - 1)
                    {
                        atomicAdd(&hist[r][digit], static_cast<uint32_t>(__popc(peers)));
                    }
                }
            }
        }
        __syncthreads();

        int32_t const row = warp < numRatios ? slot[warp] : -1; // warp-uniform
        if (row >= 0)
        {
            uint32_t before = 0;
            uint32_t count = 0;
            int const digit = findDigit(hist[row], need[warp], before, count);
            if (lane == 0)
            {
                prefix[warp] |= static_cast<uint64_t>(digit) << shift;
                need[warp] -= before;
                if (count == need[warp])
                {
                    slot[warp] = -1; // every key of the bucket is kept: threshold = prefix
                }
            }
        }
        __syncthreads();
    }

    for (int32_t i = threadIdx.x; i < n; i += kSelectThreads)
    {
        uint64_t const key = cellKey(imageScores[i], i);
        for (int32_t r = 0; r < numRatios; ++r)
        {
            imageMasks[static_cast<size_t>(r) * n + i] = key >= prefix[r] ? 1.0F : 0.0F;
        }
    }
}

extern "C" __global__ void __launch_bounds__(kApplyThreads) fornet_topk_gate_apply_f32(
    float const* __restrict__ features, float const* __restrict__ masks, FornetTopKGateOutputs out, int32_t channels,
    FornetTopKGateParams params)
{
    applyGate<float>(features, masks, out, channels, params);
}

extern "C" __global__ void __launch_bounds__(kApplyThreads) fornet_topk_gate_apply_f16(
    __half const* __restrict__ features, float const* __restrict__ masks, FornetTopKGateOutputs out, int32_t channels,
    FornetTopKGateParams params)
{
    applyGate<__half>(features, masks, out, channels, params);
}

extern "C" cudaError_t fornet_topk_gate_launch(void const* features, float const* scores, void* const* gated,
    float* masks, int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t const* ks,
    int32_t num_ratios, int32_t feature_type, cudaStream_t stream)
{
    if (!validArguments(features, scores, gated, masks, batch, channels, height, width, ks, num_ratios, feature_type))
    {
        return cudaErrorInvalidValue;
    }
    if (batch == 0)
    {
        return cudaSuccess;
    }
    FornetTopKGateParams params{};
    params.num_cells = height * width;
    params.num_ratios = num_ratios;
    FornetTopKGateOutputs out{};
    for (int32_t r = 0; r < num_ratios; ++r)
    {
        params.ks[r] = ks[r];
        out.gated[r] = gated[r];
    }

    fornet_topk_gate_select<<<batch, kSelectThreads, 0, stream>>>(scores, masks, params);
    dim3 const grid((params.num_cells + kApplyThreads - 1) / kApplyThreads,
        (channels + kApplyChannels - 1) / kApplyChannels, batch);
    if (feature_type == FORNET_TOPK_GATE_FLOAT16)
    {
        fornet_topk_gate_apply_f16<<<grid, kApplyThreads, 0, stream>>>(
            static_cast<__half const*>(features), masks, out, channels, params);
    }
    else
    {
        fornet_topk_gate_apply_f32<<<grid, kApplyThreads, 0, stream>>>(
            static_cast<float const*>(features), masks, out, channels, params);
    }
    return cudaGetLastError();
}
