// attention_fused.cu — fp32-arithmetic attention with the whole (image, head)
// in shared memory: the exact path (f32 runs match the CPU reference to 1e-5)
// and the fallback for bf16 head sizes the tensor-core path does not take.
//
// Forward: a block owns one (image, head) and a range of query rows; K and V of
// the whole sequence sit in shared memory as fp32. A warp takes one query row
// at a time: lanes own keys for the scores (q·k_j, the row kept in a per-warp
// shared buffer), a warp max/sum gives the softmax, then lanes own head dims
// for P·V. lse = max + log Σ is saved.
// Backward (P recomputed from lse, D = rowsum(dO∘O) precomputed by row_dot):
//   query side  (one warp per query i):  dS_ij = P_ij (dO_i·V_j − D_i),  dQ_i = scale Σ_j dS_ij K_j
//   key side    (one warp per key j):    dV_j = Σ_i P_ij dO_i,  dK_j = scale Σ_i dS_ij Q_i
// Two kernels instead of one with atomics: every gradient element is written
// by exactly one thread, in a fixed order, so results are deterministic.
// Shared-memory rows read "one row per lane" are padded by one float (no bank
// conflicts); rows read "one column per lane" are not.
#include <algorithm>
#include <string>

#include "kernels/cuda/attention_impl.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda::attn {
namespace {

constexpr int kWarps = 8;               // warps per block
constexpr int kRowsPerBlockTarget = 64; // query/key rows per block (≈ 8 per warp)
constexpr int kMaxDimsPerLane = kSimtMaxHeadDim / 32;

// Loads rows [0, T) of one head's q, k or v slice into shared memory as fp32,
// row stride `ld` floats. src points at (b, t=0, which, h, 0); token stride ts.
template <class T>
__device__ void load_rows(float* dst, int ld, const T* src, long long ts, int T_, int hd) {
  for (int idx = threadIdx.x; idx < T_ * hd; idx += blockDim.x) {
    const int r = idx / hd, d = idx % hd;
    dst[r * ld + d] = to_float(src[r * ts + d]);
  }
}

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    simt_forward_kernel(T* __restrict__ out, float* __restrict__ lse, const T* __restrict__ qkv, int T_, int H, int hd,
                        float scale, int rows_per_block) {
  extern __shared__ float smem[];
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kld = hd + 1;                  // K read one row per lane: padded
  float* Ks = smem;                        // (T, hd+1)
  float* Vs = Ks + T_ * kld;               // (T, hd)
  float* Ps = Vs + T_ * hd + warp * T_;    // (T) this warp's score row
  float* qs = Vs + T_ * hd + kWarps * T_ + warp * hd;  // (hd) this warp's query
  const long long ts = 3LL * H * hd;       // token stride in qkv
  const T* base = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * hd;
  load_rows(Ks, kld, base + static_cast<long long>(H) * hd, ts, T_, hd);
  load_rows(Vs, hd, base + 2LL * H * hd, ts, T_, hd);
  __syncthreads();

  const int row_end = min(T_, (blockIdx.y + 1) * rows_per_block);
  for (int i = blockIdx.y * rows_per_block + warp; i < row_end; i += kWarps) {
    for (int d = lane; d < hd; d += 32) qs[d] = to_float(base[static_cast<long long>(i) * ts + d]);
    __syncwarp();
    float mx = -INFINITY;
    for (int j = lane; j < T_; j += 32) {
      const float* k = Ks + j * kld;
      float s = 0.f;
      for (int d = 0; d < hd; ++d) s += qs[d] * k[d];
      s *= scale;
      Ps[j] = s;
      mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float l = 0.f;
    for (int j = lane; j < T_; j += 32) {
      const float p = expf(Ps[j] - mx);
      Ps[j] = p;
      l += p;
    }
    l = warp_sum(l);
    __syncwarp();  // Ps complete before lanes read all of it
    const float inv_l = 1.f / l;
    T* o = out + (static_cast<long long>(b) * T_ + i) * H * hd + static_cast<long long>(h) * hd;
#pragma unroll
    for (int c = 0; c < kMaxDimsPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) {
        float acc = 0.f;
        for (int j = 0; j < T_; ++j) acc += Ps[j] * Vs[j * hd + d];
        o[d] = from_float<T>(acc * inv_l);
      }
    }
    if (lane == 0) lse[static_cast<long long>(bh) * T_ + i] = mx + logf(l);
    __syncwarp();  // qs / Ps reused by the next row
  }
}

// Query side: dQ. K and V of the head in shared memory, both read one row per lane.
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    simt_backward_dq_kernel(T* __restrict__ d_qkv, const T* __restrict__ d_out, const T* __restrict__ qkv,
                            const float* __restrict__ lse, const float* __restrict__ dsum, int T_, int H, int hd,
                            float scale, int rows_per_block) {
  extern __shared__ float smem[];
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ld = hd + 1;
  float* Ks = smem;                                      // (T, hd+1)
  float* Vs = Ks + T_ * ld;                              // (T, hd+1)
  float* Ss = Vs + T_ * ld + warp * T_;                  // (T) dS row
  float* qs = Vs + T_ * ld + kWarps * T_ + warp * 2 * hd;  // (hd) q_i, then (hd) dO_i
  float* dos = qs + hd;
  const long long ts = 3LL * H * hd;
  const T* base = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * hd;
  load_rows(Ks, ld, base + static_cast<long long>(H) * hd, ts, T_, hd);
  load_rows(Vs, ld, base + 2LL * H * hd, ts, T_, hd);
  __syncthreads();

  const int row_end = min(T_, (blockIdx.y + 1) * rows_per_block);
  for (int i = blockIdx.y * rows_per_block + warp; i < row_end; i += kWarps) {
    const long long orow = (static_cast<long long>(b) * T_ + i) * H * hd + static_cast<long long>(h) * hd;
    for (int d = lane; d < hd; d += 32) {
      qs[d] = to_float(base[static_cast<long long>(i) * ts + d]);
      dos[d] = to_float(d_out[orow + d]);
    }
    __syncwarp();
    const float li = lse[static_cast<long long>(bh) * T_ + i], Di = dsum[static_cast<long long>(bh) * T_ + i];
    for (int j = lane; j < T_; j += 32) {
      const float* k = Ks + j * ld;
      const float* v = Vs + j * ld;
      float s = 0.f, dp = 0.f;
      for (int d = 0; d < hd; ++d) {
        s += qs[d] * k[d];
        dp += dos[d] * v[d];
      }
      const float p = expf(s * scale - li);
      Ss[j] = p * (dp - Di);
    }
    __syncwarp();
    T* dq = d_qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(i) * ts + static_cast<long long>(h) * hd;
#pragma unroll
    for (int c = 0; c < kMaxDimsPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) {
        float acc = 0.f;
        for (int j = 0; j < T_; ++j) acc += Ss[j] * Ks[j * ld + d];
        dq[d] = from_float<T>(acc * scale);
      }
    }
    __syncwarp();
  }
}

// Key side: dK, dV. Q and dO of the head in shared memory (read one row per lane).
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    simt_backward_dkdv_kernel(T* __restrict__ d_qkv, const T* __restrict__ d_out, const T* __restrict__ qkv,
                              const float* __restrict__ lse, const float* __restrict__ dsum, int T_, int H, int hd,
                              float scale, int rows_per_block) {
  extern __shared__ float smem[];
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ld = hd + 1;
  float* Qs = smem;                   // (T, hd+1)
  float* dOs = Qs + T_ * ld;          // (T, hd+1)
  float* lses = dOs + T_ * ld;        // (T)
  float* Ds = lses + T_;              // (T)
  float* Ps = Ds + T_ + warp * 2 * T_;  // (T) P column, then (T) dS column
  float* dSs = Ps + T_;
  float* ks = Ds + T_ + kWarps * 2 * T_ + warp * 2 * hd;  // (hd) k_j, then (hd) v_j
  float* vs = ks + hd;
  const long long ts = 3LL * H * hd;
  const T* base = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * hd;
  load_rows(Qs, ld, base, ts, T_, hd);
  load_rows(dOs, ld, d_out + static_cast<long long>(b) * T_ * H * hd + static_cast<long long>(h) * hd,
            static_cast<long long>(H) * hd, T_, hd);
  for (int i = threadIdx.x; i < T_; i += blockDim.x) {
    lses[i] = lse[static_cast<long long>(bh) * T_ + i];
    Ds[i] = dsum[static_cast<long long>(bh) * T_ + i];
  }
  __syncthreads();

  const int row_end = min(T_, (blockIdx.y + 1) * rows_per_block);
  for (int j = blockIdx.y * rows_per_block + warp; j < row_end; j += kWarps) {
    for (int d = lane; d < hd; d += 32) {
      ks[d] = to_float(base[static_cast<long long>(j) * ts + static_cast<long long>(H) * hd + d]);
      vs[d] = to_float(base[static_cast<long long>(j) * ts + 2LL * H * hd + d]);
    }
    __syncwarp();
    for (int i = lane; i < T_; i += 32) {
      const float* q = Qs + i * ld;
      const float* go = dOs + i * ld;
      float s = 0.f, dp = 0.f;
      for (int d = 0; d < hd; ++d) {
        s += q[d] * ks[d];
        dp += go[d] * vs[d];
      }
      const float p = expf(s * scale - lses[i]);
      Ps[i] = p;
      dSs[i] = p * (dp - Ds[i]);
    }
    __syncwarp();
    T* row = d_qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(j) * ts + static_cast<long long>(h) * hd;
#pragma unroll
    for (int c = 0; c < kMaxDimsPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) {
        float dk = 0.f, dv = 0.f;
        for (int i = 0; i < T_; ++i) {
          dv += Ps[i] * dOs[i * ld + d];
          dk += dSs[i] * Qs[i * ld + d];
        }
        row[static_cast<long long>(H) * hd + d] = from_float<T>(dk * scale);
        row[2LL * H * hd + d] = from_float<T>(dv);
      }
    }
    __syncwarp();
  }
}

// dsum (B, H, T): one warp per (b, t, h) row of hd contiguous elements.
template <class T>
__global__ void row_dot_kernel(float* __restrict__ dsum, const T* __restrict__ d_out, const T* __restrict__ out, int B,
                               int T_, int H, int hd) {
  const long long row = static_cast<long long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<long long>(B) * T_ * H) return;
  const T* a = d_out + row * hd;
  const T* o = out + row * hd;
  float s = 0.f;
  for (int d = lane; d < hd; d += 32) s += to_float(a[d]) * to_float(o[d]);
  s = warp_sum(s);
  // row = (b·T + t)·H + h  →  dsum[(b·H + h)·T + t]
  const long long h = row % H, bt = row / H, t = bt % T_, b = bt / T_;
  if (lane == 0) dsum[(b * H + h) * T_ + t] = s;
}

int simt_blocks_per_head(int T_) { return static_cast<int>(ceil_div(T_, kRowsPerBlockTarget)); }

std::string where(const char* op, int B, int T_, int H, int hd, DType dt) {
  return std::string(op) + " (SIMT path, " + dims({{"B", B}, {"T", T_}, {"H", H}, {"hd", hd}}) + " " + dtype_name(dt) +
         ")";
}

template <class F> void dispatch(DType dt, F&& f) {
  if (dt == DType::f32)
    f(float{});
  else
    f(bf16{});
}

}  // namespace

std::size_t simt_forward_smem_bytes(int T_, int hd) {
  return sizeof(float) * (static_cast<std::size_t>(T_) * (hd + 1) + static_cast<std::size_t>(T_) * hd +
                          static_cast<std::size_t>(kWarps) * T_ + static_cast<std::size_t>(kWarps) * hd);
}

std::size_t simt_backward_smem_bytes(int T_, int hd) {
  // The larger of the two backward kernels (they run one after the other).
  const std::size_t dq = static_cast<std::size_t>(T_) * (hd + 1) * 2 + static_cast<std::size_t>(kWarps) * T_ +
                         static_cast<std::size_t>(kWarps) * 2 * hd;
  const std::size_t dkdv = static_cast<std::size_t>(T_) * (hd + 1) * 2 + 2 * static_cast<std::size_t>(T_) +
                           static_cast<std::size_t>(kWarps) * 2 * T_ + static_cast<std::size_t>(kWarps) * 2 * hd;
  return sizeof(float) * std::max(dq, dkdv);
}

void simt_init(int max_smem_optin) {
  const std::string what = "attention init (max dynamic shared memory " + std::to_string(max_smem_optin) + " bytes)";
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_forward_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_forward_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_backward_dq_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_backward_dq_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_backward_dkdv_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(simt_backward_dkdv_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin), what);
}

void simt_forward(cudaStream_t stream, DType dt, void* out, float* lse, const void* qkv, int B, int T_, int H, int hd) {
  const int nb = simt_blocks_per_head(T_);
  const dim3 grid(static_cast<unsigned>(B * H), static_cast<unsigned>(nb));  // (image, head) on x: y stops at 65535
  const float scale = 1.f / sqrtf(static_cast<float>(hd));
  const std::size_t smem = simt_forward_smem_bytes(T_, hd);
  dispatch(dt, [&](auto tag) {
    using E = decltype(tag);
    simt_forward_kernel<E><<<grid, kWarps * 32, smem, stream>>>(static_cast<E*>(out), lse, static_cast<const E*>(qkv),
                                                                 T_, H, hd, scale, static_cast<int>(ceil_div(T_, nb)));
  });
  VS_LAUNCH_CHECK(where("attention", B, T_, H, hd, dt));
}

void simt_backward(cudaStream_t stream, DType dt, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                   const float* dsum, int B, int T_, int H, int hd) {
  const int nb = simt_blocks_per_head(T_);
  const dim3 grid(static_cast<unsigned>(B * H), static_cast<unsigned>(nb));  // (image, head) on x: y stops at 65535
  const float scale = 1.f / sqrtf(static_cast<float>(hd));
  const std::size_t smem = simt_backward_smem_bytes(T_, hd);
  const int rows = static_cast<int>(ceil_div(T_, nb));
  dispatch(dt, [&](auto tag) {
    using E = decltype(tag);
    simt_backward_dq_kernel<E><<<grid, kWarps * 32, smem, stream>>>(
        static_cast<E*>(d_qkv), static_cast<const E*>(d_out), static_cast<const E*>(qkv), lse, dsum, T_, H, hd, scale,
        rows);
    VS_LAUNCH_CHECK(where("attention_backward dQ", B, T_, H, hd, dt));
    simt_backward_dkdv_kernel<E><<<grid, kWarps * 32, smem, stream>>>(
        static_cast<E*>(d_qkv), static_cast<const E*>(d_out), static_cast<const E*>(qkv), lse, dsum, T_, H, hd, scale,
        rows);
    VS_LAUNCH_CHECK(where("attention_backward dK/dV", B, T_, H, hd, dt));
  });
}

void row_dot(cudaStream_t stream, DType dt, float* dsum, const void* d_out, const void* out, int B, int T_, int H,
             int hd) {
  const long long rows = static_cast<long long>(B) * T_ * H;
  if (rows == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(rows, 8));
  dispatch(dt, [&](auto tag) {
    using E = decltype(tag);
    row_dot_kernel<E><<<grid, 256, 0, stream>>>(dsum, static_cast<const E*>(d_out), static_cast<const E*>(out), B, T_,
                                                H, hd);
  });
  VS_LAUNCH_CHECK(where("attention_backward rowsum(dO∘O)", B, T_, H, hd, dt));
}

}  // namespace vitscale::cuda::attn
