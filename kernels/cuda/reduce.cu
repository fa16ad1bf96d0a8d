// reduce.cu — deterministic two-pass reductions (see reduce.h).
//
// Pass 1 writes one partial per (block, column) or per block to scratch; pass 2
// adds the partials in a fixed order. The partition depends only on the sizes
// (and, for column sums, the SM count), never on timing, so results are the
// same bits on every run. Each pass reads its input once with coalesced loads.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/reduce_plan.h"

namespace vitscale::cuda {
namespace {

constexpr int kRowsY = kColumnRowsY;  // threadIdx.y extent of the column kernels (reduce_plan.h)

// out_a / out_b += Σ_r partials[r, c]; block (32, 8): 8 row-strided partial sums
// per column, then thread y = 0 adds the 8 in order.
__global__ void reduce_partial_rows_kernel(const float* __restrict__ partials, int nrows, int ncols,
                                           float* __restrict__ out_a, int n_a, float* __restrict__ out_b) {
  __shared__ float red[kRowsY][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < ncols)
    for (int r = threadIdx.y; r < nrows; r += kRowsY) s += partials[static_cast<long long>(r) * ncols + c];
  red[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < ncols) {
    float t = 0.f;
#pragma unroll
    for (int y = 0; y < kRowsY; ++y) t += red[y][threadIdx.x];
    if (c < n_a)
      out_a[c] += t;
    else
      out_b[c - n_a] += t;
  }
}

// Column partial sums of x (M, N) over row chunks. Thread (x, y) owns kV
// consecutive columns (one 16-byte pack when kV = pack size) and rows y, y+8, …
// of its chunk; the 8 row-groups are folded through shared memory in order.
template <class T, int kV>
__global__ void column_partials_kernel(float* __restrict__ partials, const T* __restrict__ x, long long M, int N,
                                       long long rows_per_chunk) {
  __shared__ float red[kRowsY][32 * kV + 1];
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * kV;
  const long long r0 = static_cast<long long>(blockIdx.y) * rows_per_chunk;
  const long long r1 = min(r0 + rows_per_chunk, M);
  float acc[kV];
#pragma unroll
  for (int e = 0; e < kV; ++e) acc[e] = 0.f;
  if (c0 < N) {
    for (long long r = r0 + threadIdx.y; r < r1; r += kRowsY) {
      if constexpr (kV == Pack<T>::kSize) {
        const Pack<T> p = load_pack(x + r * N + c0);
#pragma unroll
        for (int e = 0; e < kV; ++e) acc[e] += to_float(p.v[e]);
      } else {
#pragma unroll
        for (int e = 0; e < kV; ++e)
          if (c0 + e < N) acc[e] += to_float(x[r * N + c0 + e]);
      }
    }
  }
#pragma unroll
  for (int e = 0; e < kV; ++e) red[threadIdx.y][threadIdx.x * kV + e] = acc[e];
  __syncthreads();
  // Fold: all 256 threads take columns of the block's 32·kV, in a fixed row order.
  const int tid = threadIdx.y * 32 + threadIdx.x;
  for (int lc = tid; lc < 32 * kV; lc += 32 * kRowsY) {
    const int c = blockIdx.x * 32 * kV + lc;
    if (c >= N) continue;
    float t = 0.f;
#pragma unroll
    for (int y = 0; y < kRowsY; ++y) t += red[y][lc];
    partials[static_cast<long long>(blockIdx.y) * N + c] = t;
  }
}

constexpr int kSumSqThreads = 256;
constexpr int kSumSqMaxBlocks = 1024;

__device__ float block_sum(float v, float* shared32) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x / 32;
  v = threadIdx.x < nwarps ? shared32[threadIdx.x] : 0.f;
  if (warp == 0) v = warp_sum(v);
  return v;  // valid in thread 0
}

__global__ void __launch_bounds__(kSumSqThreads)
    sum_squares_partials(float* __restrict__ partials, const float* __restrict__ x, long long n, bool vec) {
  __shared__ float s32[32];
  float s = 0.f;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long t = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (vec) {
    const long long n4 = n / 4;
    for (long long i = t; i < n4; i += stride) {
      const float4 v = __ldcs(reinterpret_cast<const float4*>(x) + i);
      s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    for (long long i = n4 * 4 + t; i < n; i += stride) s += x[i] * x[i];
  } else {
    for (long long i = t; i < n; i += stride) s += x[i] * x[i];
  }
  s = block_sum(s, s32);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kSumSqMaxBlocks) sum_squares_final(float* out, const float* partials, int nparts) {
  __shared__ float s32[32];
  const float v = threadIdx.x < nparts ? partials[threadIdx.x] : 0.f;
  const float s = block_sum(v, s32);
  if (threadIdx.x == 0) out[0] = s;
}

}  // namespace

void reduce_partial_rows(cudaStream_t stream, const float* partials, int nrows, int ncols, float* out_a, int n_a,
                         float* out_b) {
  if (ncols == 0) return;
  reduce_partial_rows_kernel<<<static_cast<unsigned>(ceil_div(ncols, 32)), dim3(32, kRowsY), 0, stream>>>(
      partials, nrows, ncols, out_a, n_a, out_b);
  VS_LAUNCH_CHECK("reduce_partial_rows (" + dims({{"rows", nrows}, {"cols", ncols}}) + ")");
}

void column_sum_accumulate(cudaStream_t stream, DType dtype, float* out, const void* x, long long M, int N,
                           float* scratch, std::size_t scratch_bytes, int num_sms) {
  if (M == 0 || N == 0) return;
  // Built only on failure (VS_CUDA_CHECK evaluates its context then): this runs once per bias, every step.
  const auto where = [&] {
    return "column_sum (bias gradient, " + dims({{"M", M}, {"N", N}}) + " " + dtype_name(dtype) + ")";
  };
  auto launch = [&](auto tag, auto kv_const) {
    using T = decltype(tag);
    constexpr int kV = decltype(kv_const)::value;
    const int chunks = column_chunks(M, N, kV, num_sms);
    // The launch's own need, checked against what the caller sized (column_sum_scratch_bytes).
    const std::size_t need = static_cast<std::size_t>(chunks) * static_cast<std::size_t>(N) * sizeof(float);
    if (scratch_bytes < need)
      throw std::logic_error(where() + ": " + std::to_string(chunks) + " chunks need " + std::to_string(need) +
                             " bytes of scratch, got " + std::to_string(scratch_bytes));
    const dim3 grid(static_cast<unsigned>(ceil_div(N, 32LL * kV)), static_cast<unsigned>(chunks));
    column_partials_kernel<T, kV>
        <<<grid, dim3(32, kRowsY), 0, stream>>>(scratch, static_cast<const T*>(x), M, N, ceil_div(M, chunks));
    VS_LAUNCH_CHECK(where());
    reduce_partial_rows(stream, scratch, chunks, N, out, N, nullptr);
  };
  const int pack = column_pack(dtype, aligned16(x), N);
  if (dtype == DType::f32) {
    if (pack == 4)
      launch(float{}, std::integral_constant<int, 4>{});
    else
      launch(float{}, std::integral_constant<int, 1>{});
  } else {
    if (pack == 8)
      launch(bf16{}, std::integral_constant<int, 8>{});
    else
      launch(bf16{}, std::integral_constant<int, 1>{});
  }
}

std::size_t sum_squares_scratch_bytes() { return kSumSqMaxBlocks * sizeof(float); }

void sum_squares(cudaStream_t stream, float* out, const float* x, long long n, float* scratch,
                 std::size_t scratch_bytes) {
  const auto where = [&] { return "grad_norm_squared (" + dims({{"n", n}}) + ")"; };  // built only on failure
  if (scratch_bytes < sum_squares_scratch_bytes()) throw std::logic_error(where() + ": scratch too small");
  // The block count depends on n alone, so the partition (and the bits) do not
  // depend on the card.
  const int blocks = static_cast<int>(std::clamp(ceil_div(n, kSumSqThreads * 8LL), 1LL, 1LL * kSumSqMaxBlocks));
  sum_squares_partials<<<blocks, kSumSqThreads, 0, stream>>>(scratch, x, n, aligned16(x));
  VS_LAUNCH_CHECK(where());
  sum_squares_final<<<1, kSumSqMaxBlocks, 0, stream>>>(out, scratch, blocks);
  VS_LAUNCH_CHECK(where());
}

}  // namespace vitscale::cuda
