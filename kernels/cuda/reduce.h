// reduce.h — deterministic reductions: partial-row sums, column sums (bias
// gradients), and the sum of squares of a flat buffer (gradient norm²).
//
// Every reduction here is two fixed-shape passes: blocks write partial sums to
// a scratch buffer, then one small kernel adds the partials in a fixed order.
// No float atomics anywhere, so the result has the same bits on every run on
// the same card (the partition depends only on the sizes and the SM count).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/reduce_plan.h"
#include "runtime/tensor.h"

namespace vitscale::cuda {

// For c < n_a: out_a[c] += Σ_r partials[r, c]; for n_a <= c < ncols:
// out_b[c - n_a] += Σ_r partials[r, c].  partials (nrows, ncols) f32.
void reduce_partial_rows(cudaStream_t stream, const float* partials, int nrows, int ncols, float* out_a, int n_a,
                         float* out_b);

// Scratch bytes column_sum_accumulate needs: column_sum_scratch_bytes(dtype, M, N, num_sms) in reduce_plan.h.
// out (N) f32 += Σ_m x[m, :] for x (M, N) of `dtype` (f32 or bf16): bias gradients.
void column_sum_accumulate(cudaStream_t stream, DType dtype, float* out, const void* x, long long M, int N,
                           float* scratch, std::size_t scratch_bytes, int num_sms);

// Scratch bytes sum_squares needs (a fixed, small number).
std::size_t sum_squares_scratch_bytes();
// out (1) f32 = Σ x[i]² over x (n) f32.
void sum_squares(cudaStream_t stream, float* out, const float* x, long long n, float* scratch,
                 std::size_t scratch_bytes);

}  // namespace vitscale::cuda
