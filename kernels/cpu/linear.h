// linear.h — nn.Linear forward and backward on the CPU: GEMMs through OpenBLAS.
//
// Weights are in nn.Linear's (out, in) layout, so out = in · Wᵀ is one row-major
// cblas_sgemm with W transposed. Each OpenMP thread calls a single-threaded
// OpenBLAS on whole blocks of the GEMM (OpenBLAS is set to one thread for the
// call, then restored): on this project's 2-core machines that is ~2x faster
// than OpenBLAS's own pthread pool, whose spinning threads also fight OpenMP's.
//
// The determinism contract: the same bits for any thread count and any run,
// whatever kernels OpenBLAS picks on this CPU. OpenBLAS chooses micro-kernels
// and edge paths per call from its M, N and K, and the summation order of an
// element follows them, so the blocks are a function of the GEMM's shape only
// (linear.cpp: row_blocks, weight_grad_parts), never of the thread count:
// every BLAS call has the same shape and pointers whether 1, 2 or 3 threads run,
// and threads only decide who computes which block. Forward and the input
// gradient are cut by rows of the output (independent blocks). The weight
// gradient is cut along its reduction (rows of d_out and in); the parts' sums
// go to scratch and are added per element in part order, in double. Bias
// gradients are column sums accumulated in double, each column summed over rows
// 0..M-1 in order by one thread.
#pragma once

#include <cstddef>
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

// d_weight += d_outᵀ · in (accumulated). `scratch` holds
// linear_backward_weight_scratch_floats(M, K, N) floats (nullptr when that is 0).
void linear_backward_weight(float* d_weight,     // (N, K)
                            const float* d_out,  // (M, N)
                            const float* in,     // (M, K)
                            float* scratch,      // (parts, N, K)
                            std::int64_t M, std::int64_t K, std::int64_t N);
std::size_t linear_backward_weight_scratch_floats(std::int64_t M, std::int64_t K, std::int64_t N);


// d_bias += Σ_rows d_out (accumulated; deterministic).
void linear_backward_bias(float* d_bias,       // (N)
                          const float* d_out,  // (M, N)
                          std::int64_t M, std::int64_t N);

}  // namespace vitscale::cpu
