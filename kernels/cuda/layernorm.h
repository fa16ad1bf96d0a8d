// layernorm.h — LayerNorm forward (optionally fused with the residual add) and
// backward, over the last dimension of a row-major (R, D) tensor.
//
// Activations are f32 or bf16 (`dtype`), gamma/beta have the same dtype (the
// compute copy of the weights); mean/rstd and the parameter gradients are f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "runtime/tensor.h"

namespace vitscale::cuda {

// out (R, D) = (x - mean) * rstd * gamma (D) + beta (D); mean (R), rstd (R) f32.
// x = a (R, D) when b == nullptr; otherwise sum (R, D) = a + b is written
// (rounded to dtype) and x = sum, the value the backward will see.
void layernorm_forward(cudaStream_t stream, DType dtype, void* out, float* mean, float* rstd, void* sum,
                       const void* a, const void* b, const void* gamma, const void* beta, int R, int D, float eps);

// Bytes of f32 scratch layernorm_backward needs for (R, D) on a card with num_sms SMs.
std::size_t layernorm_backward_scratch_bytes(int R, int D, int num_sms);

// d_in (R, D) += dx;  d_gamma (D) f32 += Σ_rows dy·x̂;  d_beta (D) f32 += Σ_rows dy.
// Deterministic: per-block partial sums go to `scratch`, then one small kernel
// adds them in a fixed order (no float atomics).
void layernorm_backward(cudaStream_t stream, DType dtype, void* d_in, float* d_gamma, float* d_beta,
                        const void* d_out, const void* in, const float* mean, const float* rstd, const void* gamma,
                        int R, int D, float* scratch, std::size_t scratch_bytes, int num_sms);

}  // namespace vitscale::cuda
