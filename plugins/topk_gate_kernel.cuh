/*
 * fornet::TopKGate CUDA kernels: host-side interface.
 *
 * Plain C/C++ (no CUDA keywords, no TensorRT headers), so the TensorRT plugin compiled by a host
 * compiler, the kernel compiled by nvcc on its own, and ctypes (benchmarks/gate_kernel_harness.py)
 * all see the same declarations.
 *
 * Semantics (executable specification: fornet.export.topk_gate_reference): per image, order the
 * h*w selector scores by value, largest first, ties broken by the smaller flat (row-major) index;
 * mask i keeps the first ks[i] cells of that order, so the masks are nested and hold exactly ks[i]
 * ones. NaN scores sort after every number and -0.0 ties with +0.0, as in the NumPy reference.
 * gated_i = features * mask_i, computed as a product (NaN and -0.0 propagate like the reference).
 */
#ifndef FORNET_TOPK_GATE_KERNEL_CUH
#define FORNET_TOPK_GATE_KERNEL_CUH

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest number of ratios (nested masks) one gate supports. */
#define FORNET_TOPK_GATE_MAX_RATIOS 8

/* Element type of features and gated outputs (scores and masks are always float32). */
#define FORNET_TOPK_GATE_FLOAT32 0
#define FORNET_TOPK_GATE_FLOAT16 1

/* Kernel arguments passed by value. */
typedef struct FornetTopKGateParams
{
    int32_t num_cells;                       /* h * w */
    int32_t num_ratios;                      /* R, 1 .. FORNET_TOPK_GATE_MAX_RATIOS */
    int32_t ks[FORNET_TOPK_GATE_MAX_RATIOS]; /* kept cells per mask, non-decreasing, 1 .. num_cells */
} FornetTopKGateParams;

typedef struct FornetTopKGateOutputs
{
    void* gated[FORNET_TOPK_GATE_MAX_RATIOS]; /* R tensors B x C x h x w, features' type */
} FornetTopKGateOutputs;

/*
 * Enqueue the gate on `stream`: one selection kernel (one block per image, radix select in shared
 * memory) writing `masks` (B x R x h x w float32), then one pass over `features` (B x C x h x w,
 * `feature_type`) writing the R gated outputs `gated[0..R-1]`. All pointers are device pointers
 * except `gated` and `ks`, host arrays of `num_ratios` entries read before the call returns.
 *
 * Returns cudaSuccess, cudaErrorInvalidValue for arguments outside the contract (ks not
 * non-decreasing in [1, height*width], more than FORNET_TOPK_GATE_MAX_RATIOS ratios, null
 * pointers, unknown feature_type), or the launch error. Nothing is launched for batch == 0.
 * No host synchronisation, no allocation: safe inside CUDA graph capture.
 */
cudaError_t fornet_topk_gate_launch(void const* features, float const* scores, void* const* gated, float* masks,
    int32_t batch, int32_t channels, int32_t height, int32_t width, int32_t const* ks, int32_t num_ratios,
    int32_t feature_type, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* FORNET_TOPK_GATE_KERNEL_CUH */
