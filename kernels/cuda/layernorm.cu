// layernorm.cu — LayerNorm forward (plain and fused with the residual add) and
// backward; see layernorm.h for the contract.
//
// Forward, vector path: one warp per row. Each lane keeps its slice of the row
// in registers (kNV packs of 16 bytes), so the row is read from memory once, the
// mean and the variance are two warp reductions over registers (two-pass in
// registers: no E[x²]−E[x]² cancellation), and the output is written once.
// Backward, vector path: one warp per row as well; a block of 8 warps owns a
// contiguous range of rows and each lane keeps dγ/dβ partial sums for its
// columns in registers. The 8 warps fold their partials into shared memory in a
// fixed order, the block writes one (2, D) partial row to scratch, and
// reduce_partial_rows adds the partial rows in a fixed order: the same bits on
// every run, no atomics.
// Generic path (D not a multiple of the pack, D > 1024, or unaligned views):
// warp per row with scalar loads, several passes over the row; correct, not tuned.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/reduce.h"

namespace vitscale::cuda {
namespace {

constexpr int kFwdWarps = 4;  // rows per forward block
constexpr int kBwdWarps = 8;  // warps per backward block (share one dγ/dβ partial)

// ---- forward ------------------------------------------------------------------

template <class T, int kNV>
__global__ void __launch_bounds__(kFwdWarps * 32)
    layernorm_fwd_vec(T* __restrict__ out, float* __restrict__ mean_out, float* __restrict__ rstd_out,
                      T* __restrict__ sum, const T* __restrict__ a, const T* __restrict__ b,
                      const T* __restrict__ gamma, const T* __restrict__ beta, int R, int D, float eps) {
  constexpr int V = Pack<T>::kSize;
  const int lane = threadIdx.x % 32;
  const long long row = static_cast<long long>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  if (row >= R) return;
  const int npack = D / V;
  const long long base = row * D;

  float x[kNV][V];  // this lane's packs of the row: p = lane + 32 j
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kNV; ++j) {
    const int p = lane + 32 * j;
    if (p < npack) {
      Pack<T> pa = load_pack_stream(a + base + p * V);
      if (b != nullptr) {
        // Fused residual: the rounded sum is stored and is what we normalise,
        // so forward and backward see the same x.
        const Pack<T> pb = load_pack_stream(b + base + p * V);
#pragma unroll
        for (int e = 0; e < V; ++e) pa.v[e] = from_float<T>(to_float(pa.v[e]) + to_float(pb.v[e]));
        store_pack(sum + base + p * V, pa);
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        x[j][e] = to_float(pa.v[e]);
        s += x[j][e];
      }
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) x[j][e] = 0.f;
    }
  }
  const float mean = warp_sum(s) / static_cast<float>(D);
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kNV; ++j) {
    if (lane + 32 * j < npack) {
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float d = x[j][e] - mean;
        ss += d * d;
      }
    }
  }
  const float var = warp_sum(ss) / static_cast<float>(D);
  const float rstd = 1.f / sqrtf(var + eps);
#pragma unroll
  for (int j = 0; j < kNV; ++j) {
    const int p = lane + 32 * j;
    if (p < npack) {
      const Pack<T> g = load_pack(gamma + p * V);
      const Pack<T> bt = load_pack(beta + p * V);
      Pack<T> o;
#pragma unroll
      for (int e = 0; e < V; ++e)
        o.v[e] = from_float<T>((x[j][e] - mean) * rstd * to_float(g.v[e]) + to_float(bt.v[e]));
      store_pack(out + base + p * V, o);
    }
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// No __restrict__: in the fused case the later passes read `sum` back.
template <class T>
__global__ void __launch_bounds__(kFwdWarps * 32)
    layernorm_fwd_generic(T* out, float* mean_out, float* rstd_out, T* sum, const T* a, const T* b, const T* gamma,
                          const T* beta, int R, int D, float eps) {
  const int lane = threadIdx.x % 32;
  const long long row = static_cast<long long>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  if (row >= R) return;
  const long long base = row * D;
  float s = 0.f;
  for (int i = lane; i < D; i += 32) {
    float v = to_float(a[base + i]);
    if (b != nullptr) {
      const T r = from_float<T>(v + to_float(b[base + i]));
      sum[base + i] = r;  // read back below by this same thread
      v = to_float(r);
    }
    s += v;
  }
  const T* x = b != nullptr ? sum : a;
  const float mean = warp_sum(s) / static_cast<float>(D);
  float ss = 0.f;
  for (int i = lane; i < D; i += 32) {
    const float d = to_float(x[base + i]) - mean;
    ss += d * d;
  }
  const float rstd = 1.f / sqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
  for (int i = lane; i < D; i += 32)
    out[base + i] = from_float<T>((to_float(x[base + i]) - mean) * rstd * to_float(gamma[i]) + to_float(beta[i]));
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// ---- backward -----------------------------------------------------------------
// With x̂ = (x − mean)·rstd and g = dy·γ:
//   dx = rstd · (g − mean(g) − x̂ · mean(g·x̂));  dγ = Σ_rows dy·x̂;  dβ = Σ_rows dy.

template <class T, int kNV>
__global__ void __launch_bounds__(kBwdWarps * 32)
    layernorm_bwd_vec(T* __restrict__ d_in, float* __restrict__ partials, const T* __restrict__ d_out,
                      const T* __restrict__ in, const float* __restrict__ mean, const float* __restrict__ rstd,
                      const T* __restrict__ gamma, int R, int D, int rows_per_block) {
  constexpr int V = Pack<T>::kSize;
  extern __shared__ float fold[];  // (2, D): this block's dγ, dβ
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int npack = D / V;
  float dg[kNV][V], db[kNV][V];
#pragma unroll
  for (int j = 0; j < kNV; ++j)
#pragma unroll
    for (int e = 0; e < V; ++e) dg[j][e] = db[j][e] = 0.f;

  const long long row0 = static_cast<long long>(blockIdx.x) * rows_per_block;
  const long long row_end = min(row0 + rows_per_block, static_cast<long long>(R));
  for (long long row = row0 + warp; row < row_end; row += kBwdWarps) {
    const float mu = mean[row], rs = rstd[row];
    const long long base = row * D;
    float xh[kNV][V], g[kNV][V];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int j = 0; j < kNV; ++j) {
      const int p = lane + 32 * j;
      if (p < npack) {
        const Pack<T> xp = load_pack_stream(in + base + p * V);
        const Pack<T> dp = load_pack_stream(d_out + base + p * V);
        const Pack<T> gp = load_pack(gamma + p * V);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float dy = to_float(dp.v[e]);
          xh[j][e] = (to_float(xp.v[e]) - mu) * rs;
          g[j][e] = dy * to_float(gp.v[e]);
          dg[j][e] += dy * xh[j][e];
          db[j][e] += dy;
          s1 += g[j][e];
          s2 += g[j][e] * xh[j][e];
        }
      }
    }
    const float m1 = warp_sum(s1) / static_cast<float>(D);
    const float m2 = warp_sum(s2) / static_cast<float>(D);
#pragma unroll
    for (int j = 0; j < kNV; ++j) {
      const int p = lane + 32 * j;
      if (p < npack) {
        Pack<T> acc = load_pack(d_in + base + p * V);  // d_in accumulates (residual stream)
#pragma unroll
        for (int e = 0; e < V; ++e)
          acc.v[e] = from_float<T>(to_float(acc.v[e]) + (g[j][e] - m1 - xh[j][e] * m2) * rs);
        store_pack(d_in + base + p * V, acc);
      }
    }
  }

  // Fold the warps' partials in warp order (fixed order → deterministic).
  for (int w = 0; w < kBwdWarps; ++w) {
    if (warp == w) {
#pragma unroll
      for (int j = 0; j < kNV; ++j) {
        const int p = lane + 32 * j;
        if (p < npack) {
#pragma unroll
          for (int e = 0; e < V; ++e) {
            const int c = p * V + e;
            fold[c] = (w == 0 ? 0.f : fold[c]) + dg[j][e];
            fold[D + c] = (w == 0 ? 0.f : fold[D + c]) + db[j][e];
          }
        }
      }
    }
    __syncthreads();
  }
  float* my = partials + static_cast<long long>(blockIdx.x) * 2 * D;
  for (int c = threadIdx.x; c < 2 * D; c += blockDim.x) my[c] = fold[c];
}

// Generic backward, part 1: dx, warp per row, scalar.
template <class T>
__global__ void __launch_bounds__(kFwdWarps * 32)
    layernorm_bwd_dx_generic(T* d_in, const T* d_out, const T* in, const float* mean, const float* rstd,
                             const T* gamma, int R, int D) {
  const int lane = threadIdx.x % 32;
  const long long row = static_cast<long long>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  if (row >= R) return;
  const long long base = row * D;
  const float mu = mean[row], rs = rstd[row];
  float s1 = 0.f, s2 = 0.f;
  for (int i = lane; i < D; i += 32) {
    const float xh = (to_float(in[base + i]) - mu) * rs;
    const float g = to_float(d_out[base + i]) * to_float(gamma[i]);
    s1 += g;
    s2 += g * xh;
  }
  const float m1 = warp_sum(s1) / static_cast<float>(D), m2 = warp_sum(s2) / static_cast<float>(D);
  for (int i = lane; i < D; i += 32) {
    const float xh = (to_float(in[base + i]) - mu) * rs;
    const float g = to_float(d_out[base + i]) * to_float(gamma[i]);
    d_in[base + i] = from_float<T>(to_float(d_in[base + i]) + (g - m1 - xh * m2) * rs);
  }
}

// Generic backward, part 2: per-chunk column partials of dy·x̂ and dy; thread per column.
template <class T>
__global__ void layernorm_bwd_params_generic(float* partials, const T* d_out, const T* in, const float* mean,
                                             const float* rstd, int R, int D, int rows_per_chunk) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= D) return;
  const long long r0 = static_cast<long long>(blockIdx.y) * rows_per_chunk;
  const long long r1 = min(r0 + rows_per_chunk, static_cast<long long>(R));
  float dg = 0.f, db = 0.f;
  for (long long r = r0; r < r1; ++r) {
    const float dy = to_float(d_out[r * D + c]);
    dg += dy * (to_float(in[r * D + c]) - mean[r]) * rstd[r];
    db += dy;
  }
  partials[static_cast<long long>(blockIdx.y) * 2 * D + c] = dg;
  partials[static_cast<long long>(blockIdx.y) * 2 * D + D + c] = db;
}

// ---- dispatch -------------------------------------------------------------------

// Packs per lane the vector kernels are instantiated for (D = 32·kNV·pack):
// f32 {2,3,4,6,8} covers D ≤ 1024 and fits 192/384/768 exactly; bf16 {1,2,3,4}.
template <class T> int pick_nv(int npack) {
  const int need = static_cast<int>(ceil_div(npack, 32));
  if constexpr (sizeof(T) == 4) {
    for (int nv : {2, 3, 4, 6, 8})
      if (need <= nv) return nv;
  } else {
    for (int nv : {1, 2, 3, 4})
      if (need <= nv) return nv;
  }
  return 0;  // too wide: generic path
}

template <class T> bool vector_path_ok(int D, std::initializer_list<const void*> ptrs) {
  if (D % Pack<T>::kSize != 0 || pick_nv<T>(D / Pack<T>::kSize) == 0) return false;
  for (const void* p : ptrs)
    if (p != nullptr && !aligned16(p)) return false;
  return true;
}

std::string ctx(const char* op, int R, int D, DType dt) {
  return std::string(op) + " (" + dims({{"R", R}, {"D", D}}) + " " + dtype_name(dt) + ")";
}

template <class T>
void forward_impl(cudaStream_t stream, T* out, float* mean, float* rstd, T* sum, const T* a, const T* b,
                  const T* gamma, const T* beta, int R, int D, float eps) {
  const dim3 grid(static_cast<unsigned>(ceil_div(R, kFwdWarps))), block(kFwdWarps * 32);
  const char* op = b ? "add_layernorm" : "layernorm";
  if (vector_path_ok<T>(D, {out, sum, a, b, gamma, beta})) {
    const int nv = pick_nv<T>(D / Pack<T>::kSize);
#define VS_LN_FWD(NV)                                                                                     \
  case NV:                                                                                                \
    layernorm_fwd_vec<T, NV><<<grid, block, 0, stream>>>(out, mean, rstd, sum, a, b, gamma, beta, R, D, eps); \
    break;
    if constexpr (sizeof(T) == 4) {
      switch (nv) { VS_LN_FWD(2) VS_LN_FWD(3) VS_LN_FWD(4) VS_LN_FWD(6) VS_LN_FWD(8) }
    } else {
      switch (nv) { VS_LN_FWD(1) VS_LN_FWD(2) VS_LN_FWD(3) VS_LN_FWD(4) }
    }
#undef VS_LN_FWD
  } else {
    layernorm_fwd_generic<T><<<grid, block, 0, stream>>>(out, mean, rstd, sum, a, b, gamma, beta, R, D, eps);
  }
  VS_LAUNCH_CHECK(ctx(op, R, D, storage_dtype<T>()));
}

// Blocks of the backward (and partial rows in scratch): enough to fill the card
// twice over, few enough that the partial rows stay small.
int backward_blocks(int R, int num_sms) {
  return static_cast<int>(std::max(1LL, std::min(ceil_div(R, kBwdWarps), 2LL * std::max(num_sms, 1))));
}

template <class T>
void backward_impl(cudaStream_t stream, T* d_in, float* d_gamma, float* d_beta, const T* d_out, const T* in,
                   const float* mean, const float* rstd, const T* gamma, int R, int D, float* scratch, int num_sms) {
  const int nblocks = backward_blocks(R, num_sms);
  const int rows_per_block = static_cast<int>(ceil_div(R, nblocks));
  // The context string is built only if a launch fails (VS_CUDA_CHECK evaluates it then).
  const auto where = [&] { return ctx("layernorm_backward", R, D, storage_dtype<T>()); };
  if (vector_path_ok<T>(D, {d_in, d_out, in, gamma})) {
    const int nv = pick_nv<T>(D / Pack<T>::kSize);
    const std::size_t smem = 2 * static_cast<std::size_t>(D) * sizeof(float);  // ≤ 8 KiB (D ≤ 1024)
    const dim3 grid(static_cast<unsigned>(nblocks)), block(kBwdWarps * 32);
#define VS_LN_BWD(NV)                                                                                           \
  case NV:                                                                                                      \
    layernorm_bwd_vec<T, NV><<<grid, block, smem, stream>>>(d_in, scratch, d_out, in, mean, rstd, gamma, R, D, \
                                                            rows_per_block);                                   \
    break;
    if constexpr (sizeof(T) == 4) {
      switch (nv) { VS_LN_BWD(2) VS_LN_BWD(3) VS_LN_BWD(4) VS_LN_BWD(6) VS_LN_BWD(8) }
    } else {
      switch (nv) { VS_LN_BWD(1) VS_LN_BWD(2) VS_LN_BWD(3) VS_LN_BWD(4) }
    }
#undef VS_LN_BWD
    VS_LAUNCH_CHECK(where());
  } else {
    layernorm_bwd_dx_generic<T><<<static_cast<unsigned>(ceil_div(R, kFwdWarps)), kFwdWarps * 32, 0, stream>>>(
        d_in, d_out, in, mean, rstd, gamma, R, D);
    VS_LAUNCH_CHECK(where());
    const dim3 grid(static_cast<unsigned>(ceil_div(D, 128)), static_cast<unsigned>(nblocks));
    layernorm_bwd_params_generic<T><<<grid, 128, 0, stream>>>(scratch, d_out, in, mean, rstd, R, D, rows_per_block);
    VS_LAUNCH_CHECK(where());
  }
  reduce_partial_rows(stream, scratch, nblocks, 2 * D, d_gamma, D, d_beta);
}

}  // namespace

void layernorm_forward(cudaStream_t stream, DType dtype, void* out, float* mean, float* rstd, void* sum,
                       const void* a, const void* b, const void* gamma, const void* beta, int R, int D, float eps) {
  if (R == 0) return;
  if (dtype == DType::f32)
    forward_impl<float>(stream, static_cast<float*>(out), mean, rstd, static_cast<float*>(sum),
                        static_cast<const float*>(a), static_cast<const float*>(b), static_cast<const float*>(gamma),
                        static_cast<const float*>(beta), R, D, eps);
  else
    forward_impl<bf16>(stream, static_cast<bf16*>(out), mean, rstd, static_cast<bf16*>(sum),
                       static_cast<const bf16*>(a), static_cast<const bf16*>(b), static_cast<const bf16*>(gamma),
                       static_cast<const bf16*>(beta), R, D, eps);
}

std::size_t layernorm_backward_scratch_bytes(int R, int D, int num_sms) {
  return static_cast<std::size_t>(backward_blocks(R, num_sms)) * 2 * static_cast<std::size_t>(D) * sizeof(float);
}

void layernorm_backward(cudaStream_t stream, DType dtype, void* d_in, float* d_gamma, float* d_beta,
                        const void* d_out, const void* in, const float* mean, const float* rstd, const void* gamma,
                        int R, int D, float* scratch, std::size_t scratch_bytes, int num_sms) {
  if (R == 0) return;
  if (scratch_bytes < layernorm_backward_scratch_bytes(R, D, num_sms))
    throw std::logic_error("layernorm_backward: scratch of " + std::to_string(scratch_bytes) + " bytes is too small for " +
                           dims({{"R", R}, {"D", D}}));
  if (dtype == DType::f32)
    backward_impl<float>(stream, static_cast<float*>(d_in), d_gamma, d_beta, static_cast<const float*>(d_out),
                         static_cast<const float*>(in), mean, rstd, static_cast<const float*>(gamma), R, D, scratch,
                         num_sms);
  else
    backward_impl<bf16>(stream, static_cast<bf16*>(d_in), d_gamma, d_beta, static_cast<const bf16*>(d_out),
                        static_cast<const bf16*>(in), mean, rstd, static_cast<const bf16*>(gamma), R, D, scratch,
                        num_sms);
}

}  // namespace vitscale::cuda
