// linear.h — nn.Linear forward and backward on the CPU: GEMMs through OpenBLAS.
//
// Weights are in nn.Linear's (out, in) layout, so out = in · Wᵀ is one row-major
// cblas_sgemm with W transposed. The GEMMs are split across OpenMP threads by
// rows of the output, each thread calling a single-threaded OpenBLAS on its
// slice (OpenBLAS is set to one thread for the call, then restored): on this project's 2-core
// machines that is ~2x faster than OpenBLAS's own pthread pool, whose spinning
// threads also fight OpenMP's. Bias gradients are column sums accumulated in
// double, each column summed over rows 0..M-1 in order by one thread: the same
// bits for any thread count.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// out = in · weightᵀ + bias.
void linear_forward(float* out,           // (M, N)
                    const float* in,      // (M, K)
                    const float* weight,  // (N, K)
                    const float* bias,    // (N) or nullptr
                    std::int64_t M, std::int64_t K, std::int64_t N);

// d_in = d_out · weight (assigned).
void linear_backward_input(float* d_in,          // (M, K)
                           const float* d_out,   // (M, N)
                           const float* weight,  // (N, K)
                           std::int64_t M, std::int64_t K, std::int64_t N);

// d_weight += d_outᵀ · in (accumulated).
void linear_backward_weight(float* d_weight,     // (N, K)
                            const float* d_out,  // (M, N)
                            const float* in,     // (M, K)
                            std::int64_t M, std::int64_t K, std::int64_t N);

// d_bias += Σ_rows d_out (accumulated; deterministic).
void linear_backward_bias(float* d_bias,       // (N)
                          const float* d_out,  // (M, N)
                          std::int64_t M, std::int64_t N);

}  // namespace vitscale::cpu
