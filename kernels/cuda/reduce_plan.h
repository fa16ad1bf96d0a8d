// reduce_plan.h — how column_sum_accumulate (reduce.cu) splits its work, as
// pure host functions: the launch and the scratch sizing use the same ones, and
// a CPU test checks them without a GPU (tests/cuda/reduce_plan_test.cpp).
//
// x (M, N) is cut into column blocks of 32·kV columns (kV columns per thread:
// the 16-byte pack, 4 in f32 or 8 in bf16, when x is aligned and N divides;
// else 1) and row chunks, about two blocks per SM; each (chunk, column) writes
// one f32 partial, so the scratch holds chunks × N floats.
#pragma once

#include <algorithm>
#include <cstddef>

#include "runtime/tensor.h"

namespace vitscale::cuda {

inline constexpr int kColumnRowsY = 8;  // threadIdx.y extent of the column kernels

// Columns per thread the launch uses for x of `dtype` (f32 or bf16).
constexpr int column_pack(DType dtype, bool aligned16, int N) {
  const int pack = dtype == DType::bf16 ? 8 : 4;
  return aligned16 && N % pack == 0 ? pack : 1;
}

// Row chunks for (M, N) at `kv` columns per thread on a card of num_sms SMs.
constexpr int column_chunks(long long M, int N, int kv, int num_sms) {
  const long long per_block = 32LL * kv;
  const long long colblocks = (N + per_block - 1) / per_block;
  const long long want = std::max(1LL, 2LL * std::max(num_sms, 1) / std::max(colblocks, 1LL));
  const long long max_chunks = (M + kColumnRowsY - 1) / kColumnRowsY;
  return static_cast<int>(std::max(1LL, std::min(want, max_chunks)));
}

// Scratch bytes column_sum_accumulate needs for x (M, N) of `dtype`, whatever
// its alignment: the larger of the two widths that dtype can launch (1 and 4
// in f32, 1 and 8 in bf16; 8 columns per thread means fewer column blocks, so
// more chunks).
constexpr std::size_t column_sum_scratch_bytes(DType dtype, long long M, int N, int num_sms) {
  const int wide = column_pack(dtype, true, 0);
  const int chunks = std::max(column_chunks(M, N, 1, num_sms), column_chunks(M, N, wide, num_sms));
  return static_cast<std::size_t>(chunks) * static_cast<std::size_t>(N) * sizeof(float);
}

}  // namespace vitscale::cuda
