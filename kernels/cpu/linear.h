// linear.h — nn.Linear forward and backward on the CPU: GEMMs through gemm.h
// (vitscale's AVX-512 / AVX2 kernels, or OpenBLAS).
//
// Weights are in nn.Linear's (out, in) layout, so out = in · Wᵀ is one row-major
// GEMM with W transposed. Each OpenMP thread runs a single-threaded GEMM on
// whole blocks (OpenBLAS, when it is the one, is set to one thread for the
// call, then restored): on this project's 2-core machines that was ~2x faster
// than OpenBLAS's own pthread pool, whose spinning threads also fight OpenMP's.
//
// The determinism contract: the same bits for any thread count and any run,
// whatever kernels gemm.h picks on this CPU. Its summation order (and
// OpenBLAS's, which chooses micro-kernels and edge paths per call) follows
// each call's M, N and K, so the blocks are a function of the GEMM's shape only
// (linear.cpp: row_blocks, weight_grad_parts), never of the thread count:
// every BLAS call has the same shape and pointers whether 1, 2 or 3 threads run,
// and threads only decide who computes which block. Forward and the input
// gradient are cut by rows of the output (independent blocks). The weight
// gradient is cut along its reduction (rows of d_out and in); the parts' sums
// go to scratch and are added per element in part order, in double. The bias
// gradient's column sums are read while the weight gradient packs d_out: each
// part sums its rows in order, in double, and the parts are added in order.
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

// pre = in · weightᵀ + bias, out = gelu(pre): the bits of linear_forward then
// gelu_forward, with each row block's GELU taken right after its GEMM.
void linear_gelu_forward(float* pre,           // (M, N)
                         float* out,           // (M, N)
                         const float* in,      // (M, K)
                         const float* weight,  // (N, K)
                         const float* bias,    // (N) or nullptr
                         std::int64_t M, std::int64_t K, std::int64_t N);

// d_in = d_out · weight (assigned).
void linear_backward_input(float* d_in,          // (M, K)
                           const float* d_out,   // (M, N)
                           const float* weight,  // (N, K)
                           std::int64_t M, std::int64_t K, std::int64_t N);

// d_in = d_out · weight (assigned; skipped when d_in is nullptr), d_weight +=
// d_outᵀ · in and d_bias += Σ_rows d_out (accumulated; d_bias may be nullptr),
// in one pass over d_out's row blocks. `scratch` holds
// linear_backward_weight_scratch_floats(M, K, N) floats (nullptr when that is 0).
void linear_backward(float* d_in,          // (M, K) or nullptr
                     float* d_weight,      // (N, K)
                     float* d_bias,        // (N) or nullptr
                     const float* d_out,   // (M, N)
                     const float* in,      // (M, K)
                     const float* weight,  // (N, K)
                     float* scratch,       // (parts, N, K)
                     std::int64_t M, std::int64_t K, std::int64_t N);
std::size_t linear_backward_weight_scratch_floats(std::int64_t M, std::int64_t K, std::int64_t N);

// The backward of a transformer MLP, fc2(gelu(fc1(in))): what
//   linear_backward(d_hidden, d_fc2_weight, d_fc2_bias, d_out, act, fc2_weight)
//   gelu_backward(d_hidden, d_hidden, pre)
//   linear_backward(d_in, d_fc1_weight, d_fc1_bias, d_hidden, in, fc1_weight)
// compute, bit for bit, in one pass over the weight gradients' row parts.
// Weight and bias gradients accumulate; d_hidden and d_in are assigned (d_in
// skipped when nullptr, the biases' when nullptr).
struct MlpBackwardArgs {
  float* d_in;              // (M, D) or nullptr
  float* d_fc1_weight;      // (F, D)
  float* d_fc1_bias;        // (F) or nullptr
  float* d_fc2_weight;      // (D, F)
  float* d_fc2_bias;        // (D) or nullptr
  float* d_hidden;          // (M, F): d(pre), working memory
  const float* d_out;       // (M, D): d(fc2's output)
  const float* in;          // (M, D): fc1's input
  const float* pre;         // (M, F): fc1's output, before GELU
  const float* act;         // (M, F): gelu(pre), fc2's input
  const float* fc1_weight;  // (F, D)
  const float* fc2_weight;  // (D, F)
};
void mlp_backward(const MlpBackwardArgs& args,
                  float* scratch,  // mlp_backward_scratch_floats(M, D, F) floats
                  std::int64_t M, std::int64_t D, std::int64_t F);
std::size_t mlp_backward_scratch_floats(std::int64_t M, std::int64_t D, std::int64_t F);

}  // namespace vitscale::cpu
