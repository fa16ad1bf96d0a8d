// layernorm.h — LayerNorm over the last dim, forward (plain and fused with the
// residual add) and backward.
//
// One row per work item: the row statistics are accumulated in double (two
// passes: mean, then Σ(x − mean)², which is exact enough to be the oracle for
// the GPU kernels) and saved in f32 for backward. The parameter gradients are
// column sums over all rows; each column is summed in row order by one thread,
// so they are the same bits for any thread count.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// out = (in − mean)·rstd·gamma + beta per row; mean, rstd saved.
void layernorm_forward(float* out,          // (R, D)
                       float* mean,         // (R)
                       float* rstd,         // (R)
                       const float* in,     // (R, D)
                       const float* gamma,  // (D)
                       const float* beta,   // (D)
                       std::int64_t R, std::int64_t D, float eps);

// sum = a + b (the residual stream), then out = layernorm(sum), row by row.
void add_layernorm_forward(float* sum,          // (R, D)
                           float* out,          // (R, D)
                           float* mean,         // (R)
                           float* rstd,         // (R)
                           const float* a,      // (R, D)
                           const float* b,      // (R, D)
                           const float* gamma,  // (D)
                           const float* beta,   // (D)
                           std::int64_t R, std::int64_t D, float eps);

// d_in += ∂/∂in (accumulates: the residual stream's gradient);
// d_gamma += Σ_rows d_out·x̂; d_beta += Σ_rows d_out.
void layernorm_backward(float* d_in,         // (R, D)
                        float* d_gamma,      // (D)
                        float* d_beta,       // (D)
                        const float* d_out,  // (R, D)
                        const float* in,     // (R, D)
                        const float* mean,   // (R)
                        const float* rstd,   // (R)
                        const float* gamma,  // (D)
                        std::int64_t R, std::int64_t D);

}  // namespace vitscale::cpu
