// attention_flash.cu — bf16 attention on tensor cores (mma.sync m16n8k16,
// fp32 accumulation), forward and backward, for hd ∈ {32, 48, 64, 80, 96, 128}
// (any multiple of 16 works: the k steps are 16 wide, the n tiles 8).
//
// Layout of the work. Every warp owns 16 rows (queries, or keys in the dK/dV
// kernel); a block holds up to 8 warps of the same (image, head) and is sized
// so that the rows of one (image, head) split evenly: at T = 65 one block of 5
// warps covers the whole sequence, so K and V are read once per head. The other
// operand goes through shared memory in chunks (attention_chunks.h): for
// T <= 128 one chunk of round_up(T, 16) rows (one load, one barrier pair),
// zero-filled past T; longer sequences stream chunk after chunk. Each warp
// walks a chunk in register tiles (RC columns of S at a time, fixed per head
// size to bound registers), with online softmax across tiles and chunks in
// the forward. Shared memory is dynamic, sized per launch from the chunk;
// transposed tiles are stored tile-major so that in-tile strides stay
// compile-time constants (a run-time stride cost 31 registers in the hd-128
// forward, ptxas 13.0).
// Grid: (image, head) on x (up to 2³¹ − 1: any eval batch), the row blocks of
// one head on y (a handful).
//
//   forward      S = Q Kᵀ, online softmax (running max m, sum l), O += P V;
//                O /= l, lse = m + log l saved.
//   backward dQ  per query chunk of a warp:  P = exp(S − lse), dP = dO Vᵀ,
//                dS = P ∘ (dP − D), dQ += dS K        (D = rowsum(dO∘O), precomputed)
//   backward dKV per key rows of a warp:     Pᵀ, dPᵀ = V dOᵀ, dSᵀ, dV += Pᵀ dO, dK += dSᵀ Q
// dQ and dK/dV are separate kernels (FlashAttention's deterministic mode):
// each output element is produced by one warp, no atomics, same bits every run.
//
// Fragments (PTX ISA, m16n8k16 with g = lane/4, t = lane%4):
//   A 16×16: a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
//   B 16×8:  b0 (k = 2t..2t+1, n = g)  b1 (k = 2t+8.., n = g)
//   C 16×8:  c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1)
// Two adjacent C tiles (n = 8j.. and 8j+8..) are exactly the A fragment of a
// 16-wide k step, so P and dS go from accumulators to the next MMA in registers.
// A B operand whose k index runs along a shared-memory row (K for S = QKᵀ, V
// for dP = dO Vᵀ, Q and dO in the dK/dV kernel) is read from the row-major
// tile; one whose k index runs down a column (V for O = PV, K for dQ = dS K, Q
// and dO for dK, dV) from a transposed copy written while loading the chunk.
// Rows are padded by 8 bf16 (16 bytes): every fragment load of a warp hits 32
// distinct banks, and 16-byte stores stay aligned.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention_chunks.h"
#include "kernels/cuda/attention_impl.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda::attn {
namespace {

constexpr int kMaxWarps = 8;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ void mma16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                         std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

__device__ __forceinline__ std::uint32_t ld32(const bf16* p) { return *reinterpret_cast<const std::uint32_t*>(p); }

// A fragment of rows [r0, r0+16) × cols [c0, c0+16) of a row-major global
// matrix with row stride ld (elements); rows >= nrows read as zero.
__device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const bf16* m, long long ld, int r0, int nrows, int c0) {
  const int lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int ra = r0 + g, rb = r0 + g + 8;
  a[0] = ra < nrows ? ld32(m + ra * ld + c0 + 2 * t) : 0u;
  a[1] = rb < nrows ? ld32(m + rb * ld + c0 + 2 * t) : 0u;
  a[2] = ra < nrows ? ld32(m + ra * ld + c0 + 2 * t + 8) : 0u;
  a[3] = rb < nrows ? ld32(m + rb * ld + c0 + 2 * t + 8) : 0u;
}

// Rows [row0, row0 + rows) of one head's slice (global, token stride ts) into
// shared memory: row-major into `rm` (row stride rs) and/or transposed into
// `tr`, tile-major: rows [j·TILE, (j+1)·TILE) go to the j-th (HD, TILE + 8)
// block (tr[j][d][r mod TILE], transposed_tile_elems apart), so a kernel
// reading one register tile indexes it with compile-time strides and only the
// tile's base is a run-time offset. Rows at or past T are zero. Consecutive
// threads take consecutive rows of one 16-byte column group, so the
// transposed scalar stores of a warp land in consecutive addresses.
template <int HD, int TILE>
__device__ constexpr int transposed_tile_elems() {
  return HD * (TILE + 8);
}

template <int HD, int TILE>
__device__ __forceinline__ void load_chunk(bf16* rm, int rs, bf16* tr, const bf16* src, long long ts, int row0,
                                           int rows, int T_) {
  constexpr int kTrStride = TILE + 8;
  constexpr int kGroups = HD / 8;
  for (int idx = threadIdx.x; idx < rows * kGroups; idx += blockDim.x) {
    const int r = idx % rows, c8 = (idx / rows) * 8;
    const int row = row0 + r;
    Pack<bf16> p;
    if (row < T_)
      p = load_pack(src + row * ts + c8);
    else
      *reinterpret_cast<int4*>(&p) = make_int4(0, 0, 0, 0);
    if (rm != nullptr) store_pack(rm + r * rs + c8, p);
    if (tr != nullptr) {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        tr[(r / TILE) * transposed_tile_elems<HD, TILE>() + (c8 + e) * kTrStride + r % TILE] = p.v[e];
    }
  }
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- forward --------------------------------------------------------------------

// The dynamic shared memory of every flash kernel (sized per launch from the
// chunk: attention_chunks.h), carved into bf16 tiles.
__device__ __forceinline__ bf16* flash_smem() {
  extern __shared__ __align__(16) unsigned char flash_smem_bytes[];
  return reinterpret_cast<bf16*>(flash_smem_bytes);
}

// RC: keys per register tile, 64 or 80 (flash_forward_tile); kc: keys per
// shared-memory chunk (a multiple of 16; round_up(T, 16) for T <= 128).
template <int HD, int RC>
__global__ void __launch_bounds__(kMaxWarps * 32)
    flash_forward_kernel(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ qkv, int T_, int H,
                         float scale_log2, int kc) {
  static_assert(RC % 16 == 0, "key tile: whole 16-key k steps");
  constexpr int KS = HD + 8;
  constexpr int NKT = RC / 8, NDT = HD / 8, KST = HD / 16;
  constexpr int VTS = RC + 8;
  bf16* Ks = flash_smem();  // (kc, HD) keys, row-major
  bf16* Vt = Ks + kc * KS;  // (kc / RC tiles, HD, RC + 8) values, transposed (load_chunk)
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const long long ts = 3LL * H * HD;
  const bf16* qb = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * HD;
  const bf16* kb = qb + static_cast<long long>(H) * HD;
  const bf16* vb = qb + 2LL * H * HD;
  const int q0 = blockIdx.y * (blockDim.x / 32) * 16 + warp * 16;
  const bool active = q0 < T_;

  std::uint32_t qf[KST][4];
#pragma unroll
  for (int ks = 0; ks < KST; ++ks) load_a(qf[ks], qb, ts, q0, T_, ks * 16);
  float o[NDT][4];
#pragma unroll
  for (int d = 0; d < NDT; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g and g+8, log2 domain

  for (int kc0 = 0; kc0 < T_; kc0 += kc) {
    __syncthreads();  // the previous chunk is consumed
    load_chunk<HD, RC>(Ks, KS, nullptr, kb, ts, kc0, kc, T_);
    load_chunk<HD, RC>(nullptr, 0, Vt, vb, ts, kc0, kc, T_);
    __syncthreads();
    if (!active) continue;
    // The chunk's keys, a register tile at a time (rows past the chunk's
    // valid keys are never read: every tile below stops at `kvalid`).
    for (int tile0 = 0; tile0 < min(kc, T_ - kc0); tile0 += RC) {
      const int kvalid = min(RC, T_ - kc0 - tile0);
      const bf16* Kst = Ks + tile0 * KS;
      const bf16* Vtt = Vt + (tile0 / RC) * transposed_tile_elems<HD, RC>();

      float s[NKT][4];
#pragma unroll
      for (int nt = 0; nt < NKT; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        if (nt * 8 < kvalid) {
#pragma unroll
          for (int ks = 0; ks < KST; ++ks) {
            const bf16* kp = Kst + (nt * 8 + g) * KS + ks * 16 + 2 * t;
            mma16816(s[nt], qf[ks], ld32(kp), ld32(kp + 8));
          }
        }
      }
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NKT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nt * 8 + 2 * t + (e & 1);
          const float v = col < kvalid ? s[nt][e] * scale_log2 : -INFINITY;
          s[nt][e] = v;
          if (e < 2)
            mx0 = fmaxf(mx0, v);
          else
            mx1 = fmaxf(mx1, v);
        }
      }
      // Every tile has at least one valid key, so the new maxima are finite.
      const float mn0 = fmaxf(m0, quad_max(mx0)), mn1 = fmaxf(m1, quad_max(mx1));
      const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // 0 on the first tile
      m0 = mn0;
      m1 = mn1;
      float ls0 = 0.f, ls1 = 0.f;
#pragma unroll
      for (int nt = 0; nt < NKT; ++nt) {
        s[nt][0] = exp2f(s[nt][0] - mn0);
        s[nt][1] = exp2f(s[nt][1] - mn0);
        s[nt][2] = exp2f(s[nt][2] - mn1);
        s[nt][3] = exp2f(s[nt][3] - mn1);
        ls0 += s[nt][0] + s[nt][1];
        ls1 += s[nt][2] + s[nt][3];
      }
      l0 = l0 * c0 + ls0;  // per-thread partial sums; the quad adds them at the end
      l1 = l1 * c1 + ls1;
#pragma unroll
      for (int d = 0; d < NDT; ++d) {
        o[d][0] *= c0;
        o[d][1] *= c0;
        o[d][2] *= c1;
        o[d][3] *= c1;
      }
#pragma unroll
      for (int kk = 0; kk < RC / 16; ++kk) {
        if (kk * 16 < kvalid) {
          const std::uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                      pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                      pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
          for (int d = 0; d < NDT; ++d) {
            const bf16* vp = Vtt + (d * 8 + g) * VTS + kk * 16 + 2 * t;
            mma16816(o[d], a, ld32(vp), ld32(vp + 8));
          }
        }
      }
    }  // tiles of the chunk
  }
  if (!active) return;
  l0 = quad_sum(l0);
  l1 = quad_sum(l1);
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  const int ra = q0 + g, rb = q0 + g + 8;
  bf16* ob = out + static_cast<long long>(b) * T_ * H * HD + static_cast<long long>(h) * HD;
#pragma unroll
  for (int d = 0; d < NDT; ++d) {
    const int col = d * 8 + 2 * t;
    if (ra < T_)
      *reinterpret_cast<std::uint32_t*>(ob + static_cast<long long>(ra) * H * HD + col) =
          pack_bf16(o[d][0] * inv0, o[d][1] * inv0);
    if (rb < T_)
      *reinterpret_cast<std::uint32_t*>(ob + static_cast<long long>(rb) * H * HD + col) =
          pack_bf16(o[d][2] * inv1, o[d][3] * inv1);
  }
  if (t == 0) {
    if (ra < T_) lse[static_cast<long long>(bh) * T_ + ra] = (m0 + log2f(l0)) * kLn2;
    if (rb < T_) lse[static_cast<long long>(bh) * T_ + rb] = (m1 + log2f(l1)) * kLn2;
  }
}

// ---- backward: dQ -----------------------------------------------------------------

// RC: keys per register tile (flash_dq_tile); kc: keys per shared-memory chunk.
template <int HD, int RC>
__global__ void __launch_bounds__(kMaxWarps * 32)
    flash_backward_dq_kernel(bf16* __restrict__ d_qkv, const bf16* __restrict__ d_out, const bf16* __restrict__ qkv,
                             const float* __restrict__ lse, const float* __restrict__ dsum, int T_, int H,
                             float scale_log2, float scale, int kc) {
  static_assert(RC % 16 == 0, "key tile: whole 16-key k steps");
  constexpr int KS = HD + 8;
  constexpr int NKT = RC / 8, NDT = HD / 8, KST = HD / 16;
  constexpr int KTS = RC + 8;
  bf16* Ks = flash_smem();  // (kc, HD) keys
  bf16* Vs = Ks + kc * KS;  // (kc, HD) values
  bf16* Kt = Vs + kc * KS;  // (kc / RC tiles, HD, RC + 8) keys, transposed
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const long long ts = 3LL * H * HD, ots = static_cast<long long>(H) * HD;
  const bf16* qb = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * HD;
  const bf16* kb = qb + static_cast<long long>(H) * HD;
  const bf16* vb = qb + 2LL * H * HD;
  const bf16* dob = d_out + static_cast<long long>(b) * T_ * ots + static_cast<long long>(h) * HD;
  const int q0 = blockIdx.y * (blockDim.x / 32) * 16 + warp * 16;
  const bool active = q0 < T_;
  const int ra = q0 + g, rb = q0 + g + 8;

  std::uint32_t qf[KST][4], df[KST][4];
#pragma unroll
  for (int ks = 0; ks < KST; ++ks) {
    load_a(qf[ks], qb, ts, q0, T_, ks * 16);
    load_a(df[ks], dob, ots, q0, T_, ks * 16);
  }
  const float la = ra < T_ ? lse[static_cast<long long>(bh) * T_ + ra] * kLog2e : 0.f;
  const float lb = rb < T_ ? lse[static_cast<long long>(bh) * T_ + rb] * kLog2e : 0.f;
  const float Da = ra < T_ ? dsum[static_cast<long long>(bh) * T_ + ra] : 0.f;
  const float Db = rb < T_ ? dsum[static_cast<long long>(bh) * T_ + rb] : 0.f;
  float dq[NDT][4];
#pragma unroll
  for (int d = 0; d < NDT; ++d) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;

  for (int kc0 = 0; kc0 < T_; kc0 += kc) {
    __syncthreads();
    load_chunk<HD, RC>(Ks, KS, Kt, kb, ts, kc0, kc, T_);
    load_chunk<HD, RC>(Vs, KS, nullptr, vb, ts, kc0, kc, T_);
    __syncthreads();
    if (!active) continue;
    for (int tile0 = 0; tile0 < min(kc, T_ - kc0); tile0 += RC) {  // register tiles of the chunk
      const int kvalid = min(RC, T_ - kc0 - tile0);
      const bf16* Kst = Ks + tile0 * KS;
      const bf16* Vst = Vs + tile0 * KS;
      const bf16* Ktt = Kt + (tile0 / RC) * transposed_tile_elems<HD, RC>();
      float s[NKT][4], dp[NKT][4];
#pragma unroll
      for (int nt = 0; nt < NKT; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.f;
        if (nt * 8 < kvalid) {
#pragma unroll
          for (int ks = 0; ks < KST; ++ks) {
            const bf16* kp = Kst + (nt * 8 + g) * KS + ks * 16 + 2 * t;
            mma16816(s[nt], qf[ks], ld32(kp), ld32(kp + 8));
            const bf16* vp = Vst + (nt * 8 + g) * KS + ks * 16 + 2 * t;
            mma16816(dp[nt], df[ks], ld32(vp), ld32(vp + 8));
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < NKT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nt * 8 + 2 * t + (e & 1);
          const float p = col < kvalid ? exp2f(s[nt][e] * scale_log2 - (e < 2 ? la : lb)) : 0.f;
          s[nt][e] = p * (dp[nt][e] - (e < 2 ? Da : Db));  // dS
        }
      }
#pragma unroll
      for (int kk = 0; kk < RC / 16; ++kk) {
        if (kk * 16 < kvalid) {
          const std::uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                      pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                      pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
          for (int d = 0; d < NDT; ++d) {
            const bf16* kp = Ktt + (d * 8 + g) * KTS + kk * 16 + 2 * t;
            mma16816(dq[d], a, ld32(kp), ld32(kp + 8));
          }
        }
      }
    }  // tiles of the chunk
  }
  if (!active) return;
  bf16* dqb = d_qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * HD;  // the q part
#pragma unroll
  for (int d = 0; d < NDT; ++d) {
    const int col = d * 8 + 2 * t;
    if (ra < T_) *reinterpret_cast<std::uint32_t*>(dqb + ra * ts + col) = pack_bf16(dq[d][0] * scale, dq[d][1] * scale);
    if (rb < T_) *reinterpret_cast<std::uint32_t*>(dqb + rb * ts + col) = pack_bf16(dq[d][2] * scale, dq[d][3] * scale);
  }
}

// ---- backward: dK, dV -------------------------------------------------------------

// RC: queries per register tile (flash_dkdv_tile); qc: queries per shared-memory chunk.
template <int HD, int RC>
__global__ void __launch_bounds__(kMaxWarps * 32)
    flash_backward_dkdv_kernel(bf16* __restrict__ d_qkv, const bf16* __restrict__ d_out, const bf16* __restrict__ qkv,
                               const float* __restrict__ lse, const float* __restrict__ dsum, int T_, int H,
                               float scale_log2, float scale, int qc) {
  static_assert(RC % 16 == 0, "query tile: whole 16-query k steps");
  constexpr int QS = HD + 8;
  constexpr int NQT = RC / 8, NDT = HD / 8, KST = HD / 16;
  constexpr int QTS = RC + 8;
  const int tiles = (qc + RC - 1) / RC;
  bf16* Qs = flash_smem();                                   // (qc, HD) queries
  bf16* dOs = Qs + qc * QS;                                  // (qc, HD) output gradients
  bf16* Qt = dOs + qc * QS;                                  // (tiles, HD, RC + 8) queries, transposed
  bf16* dOt = Qt + tiles * transposed_tile_elems<HD, RC>();  // (tiles, HD, RC + 8) output gradients, transposed
  float* lse_s =
      reinterpret_cast<float*>(dOt + tiles * transposed_tile_elems<HD, RC>());  // (qc) log2 domain; +inf past T
  float* D_s = lse_s + qc;                                                      // (qc)
  const int bh = blockIdx.x, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const long long ts = 3LL * H * HD, ots = static_cast<long long>(H) * HD;
  const bf16* qb = qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(h) * HD;
  const bf16* kb = qb + static_cast<long long>(H) * HD;
  const bf16* vb = qb + 2LL * H * HD;
  const bf16* dob = d_out + static_cast<long long>(b) * T_ * ots + static_cast<long long>(h) * HD;
  const int k0 = blockIdx.y * (blockDim.x / 32) * 16 + warp * 16;
  const bool active = k0 < T_;

  // This warp's 16 keys and values as A operands (rows = keys, k = head dim).
  std::uint32_t kf[KST][4], vf[KST][4];
#pragma unroll
  for (int ks = 0; ks < KST; ++ks) {
    load_a(kf[ks], kb, ts, k0, T_, ks * 16);
    load_a(vf[ks], vb, ts, k0, T_, ks * 16);
  }
  float dk[NDT][4], dv[NDT][4];
#pragma unroll
  for (int d = 0; d < NDT; ++d) {
    dk[d][0] = dk[d][1] = dk[d][2] = dk[d][3] = 0.f;
    dv[d][0] = dv[d][1] = dv[d][2] = dv[d][3] = 0.f;
  }

  for (int qc0 = 0; qc0 < T_; qc0 += qc) {
    __syncthreads();
    load_chunk<HD, RC>(Qs, QS, Qt, qb, ts, qc0, qc, T_);
    load_chunk<HD, RC>(dOs, QS, dOt, dob, ots, qc0, qc, T_);
    for (int i = threadIdx.x; i < qc; i += blockDim.x) {
      const int q = qc0 + i;
      lse_s[i] = q < T_ ? lse[static_cast<long long>(bh) * T_ + q] * kLog2e : INFINITY;
      D_s[i] = q < T_ ? dsum[static_cast<long long>(bh) * T_ + q] : 0.f;
    }
    __syncthreads();
    if (!active) continue;
    for (int tile0 = 0; tile0 < min(qc, T_ - qc0); tile0 += RC) {  // register tiles of the chunk
      const int qvalid = min(RC, T_ - qc0 - tile0);
      const bf16* Qst = Qs + tile0 * QS;
      const bf16* dOst = dOs + tile0 * QS;
      const bf16* Qtt = Qt + (tile0 / RC) * transposed_tile_elems<HD, RC>();
      const bf16* dOtt = dOt + (tile0 / RC) * transposed_tile_elems<HD, RC>();
      const float* lse_t = lse_s + tile0;
      const float* D_t = D_s + tile0;
      float s[NQT][4], dp[NQT][4];  // Sᵀ and dPᵀ: rows = this warp's keys, cols = queries
#pragma unroll
      for (int nt = 0; nt < NQT; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        dp[nt][0] = dp[nt][1] = dp[nt][2] = dp[nt][3] = 0.f;
        if (nt * 8 < qvalid) {
#pragma unroll
          for (int ks = 0; ks < KST; ++ks) {
            const bf16* qp = Qst + (nt * 8 + g) * QS + ks * 16 + 2 * t;
            mma16816(s[nt], kf[ks], ld32(qp), ld32(qp + 8));
            const bf16* op = dOst + (nt * 8 + g) * QS + ks * 16 + 2 * t;
            mma16816(dp[nt], vf[ks], ld32(op), ld32(op + 8));
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < NQT; ++nt) {
        // Tiles past the valid queries are never multiplied (below), and their
        // columns may lie past the chunk's lse/D: skip them.
        if (nt * 8 < qvalid) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = nt * 8 + 2 * t + (e & 1);
            const float p = exp2f(s[nt][e] * scale_log2 - lse_t[col]);  // 0 for queries past T
            s[nt][e] = p;
            dp[nt][e] = p * (dp[nt][e] - D_t[col]);  // dSᵀ
          }
        }
      }
#pragma unroll
      for (int kk = 0; kk < RC / 16; ++kk) {
        if (kk * 16 < qvalid) {
          const std::uint32_t ap[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                       pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                       pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
          const std::uint32_t as[4] = {pack_bf16(dp[2 * kk][0], dp[2 * kk][1]), pack_bf16(dp[2 * kk][2], dp[2 * kk][3]),
                                       pack_bf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                                       pack_bf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
#pragma unroll
          for (int d = 0; d < NDT; ++d) {
            const bf16* op = dOtt + (d * 8 + g) * QTS + kk * 16 + 2 * t;
            mma16816(dv[d], ap, ld32(op), ld32(op + 8));
            const bf16* qp = Qtt + (d * 8 + g) * QTS + kk * 16 + 2 * t;
            mma16816(dk[d], as, ld32(qp), ld32(qp + 8));
          }
        }
      }
    }  // tiles of the chunk
  }
  if (!active) return;
  const int ka = k0 + g, kb2 = k0 + g + 8;
  bf16* dkb =
      d_qkv + static_cast<long long>(b) * T_ * ts + static_cast<long long>(H) * HD + static_cast<long long>(h) * HD;
  bf16* dvb = dkb + static_cast<long long>(H) * HD;
#pragma unroll
  for (int d = 0; d < NDT; ++d) {
    const int col = d * 8 + 2 * t;
    if (ka < T_) {
      *reinterpret_cast<std::uint32_t*>(dkb + ka * ts + col) = pack_bf16(dk[d][0] * scale, dk[d][1] * scale);
      *reinterpret_cast<std::uint32_t*>(dvb + ka * ts + col) = pack_bf16(dv[d][0], dv[d][1]);
    }
    if (kb2 < T_) {
      *reinterpret_cast<std::uint32_t*>(dkb + kb2 * ts + col) = pack_bf16(dk[d][2] * scale, dk[d][3] * scale);
      *reinterpret_cast<std::uint32_t*>(dvb + kb2 * ts + col) = pack_bf16(dv[d][2], dv[d][3]);
    }
  }
}

// Blocks per (image, head) and warps per block: rows split evenly, ≤ 8 warps.
void split_rows(int T_, int& blocks, int& warps) {
  const int tiles = static_cast<int>(ceil_div(T_, 16));
  blocks = static_cast<int>(ceil_div(tiles, kMaxWarps));
  warps = static_cast<int>(ceil_div(tiles, blocks));
}

std::string where(const char* op, int B, int T_, int H, int hd) {
  return std::string(op) + " (tensor-core path, " + dims({{"B", B}, {"T", T_}, {"H", H}, {"hd", hd}}) + " bf16)";
}

// Forward at head size HD: the chunk from T (attention_chunks.h), the
// register tile it implies (64, or 80 for a chunk of exactly 80 keys).
template <int HD>
void forward_hd(cudaStream_t stream, void* out, float* lse, const void* qkv, int B, int T_, int H,
                const FlashChunks& c) {
  int blocks = 0, warps = 0;
  split_rows(T_, blocks, warps);
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(HD));
  const dim3 grid(static_cast<unsigned>(B * H), static_cast<unsigned>(blocks));  // (image, head) on x
  const std::size_t smem = flash_forward_smem_bytes(HD, c.forward_keys, c.forward_tile);
  auto* o = static_cast<bf16*>(out);
  const auto* in = static_cast<const bf16*>(qkv);
  if constexpr (HD != 80) {  // flash_forward_tile never picks 80 keys at hd 80
    if (c.forward_tile == 80) {
      flash_forward_kernel<HD, 80><<<grid, warps * 32, smem, stream>>>(o, lse, in, T_, H, scale_log2, c.forward_keys);
      VS_LAUNCH_CHECK(where("attention", B, T_, H, HD));
      return;
    }
  }
  flash_forward_kernel<HD, 64><<<grid, warps * 32, smem, stream>>>(o, lse, in, T_, H, scale_log2, c.forward_keys);
  VS_LAUNCH_CHECK(where("attention", B, T_, H, HD));
}

// Backward at head size HD: dQ over key chunks, dK/dV over query chunks, each
// with its compile-time register tile (flash_dq_tile, flash_dkdv_tile).
template <int HD>
void backward_hd(cudaStream_t stream, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                 const float* dsum, int B, int T_, int H, const FlashChunks& c) {
  constexpr int kDqTile = flash_dq_tile(HD), kDkdvTile = flash_dkdv_tile(HD);
  int blocks = 0, warps = 0;
  split_rows(T_, blocks, warps);
  const float scale = 1.f / sqrtf(static_cast<float>(HD));
  const float scale_log2 = kLog2e * scale;
  const dim3 grid(static_cast<unsigned>(B * H), static_cast<unsigned>(blocks));
  flash_backward_dq_kernel<HD, kDqTile><<<grid, warps * 32, flash_dq_smem_bytes(HD, c.dq_keys, kDqTile), stream>>>(
      static_cast<bf16*>(d_qkv), static_cast<const bf16*>(d_out), static_cast<const bf16*>(qkv), lse, dsum, T_, H,
      scale_log2, scale, c.dq_keys);
  VS_LAUNCH_CHECK(where("attention_backward dQ", B, T_, H, HD));
  flash_backward_dkdv_kernel<HD, kDkdvTile>
      <<<grid, warps * 32, flash_dkdv_smem_bytes(HD, c.dkdv_queries, kDkdvTile), stream>>>(
          static_cast<bf16*>(d_qkv), static_cast<const bf16*>(d_out), static_cast<const bf16*>(qkv), lse, dsum, T_, H,
          scale_log2, scale, c.dkdv_queries);
  VS_LAUNCH_CHECK(where("attention_backward dK/dV", B, T_, H, HD));
}

// Lets every instantiation take up to the card's opt-in shared memory (a
// one-chunk cut passes 48 KiB from hd 96 at T = 112, say); the chunk choice
// never asks for more than that limit.
template <int HD>
void raise_smem_limits(int max_smem_optin) {
  const std::string what = "flash attention init (hd " + std::to_string(HD) + ", max dynamic shared memory " +
                           std::to_string(max_smem_optin) + " bytes)";
  constexpr auto attr = cudaFuncAttributeMaxDynamicSharedMemorySize;
  if constexpr (HD != 80) VS_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<HD, 80>, attr, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<HD, 64>, attr, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dq_kernel<HD, flash_dq_tile(HD)>, attr, max_smem_optin), what);
  VS_CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dkdv_kernel<HD, flash_dkdv_tile(HD)>, attr, max_smem_optin), what);
}

// Calls f(std::integral_constant<int, hd>{}) for a flash head size (the
// instantiated ones); any other throws, naming `op`.
template <class F>
void with_head_dim(int hd, const char* op, F&& f) {
  switch (hd) {
    case 32:
      return f(std::integral_constant<int, 32>{});
    case 48:
      return f(std::integral_constant<int, 48>{});
    case 64:
      return f(std::integral_constant<int, 64>{});
    case 80:
      return f(std::integral_constant<int, 80>{});
    case 96:
      return f(std::integral_constant<int, 96>{});
    case 128:
      return f(std::integral_constant<int, 128>{});
    default:
      throw std::invalid_argument(std::string(op) + ": tensor-core path has no head dim " + std::to_string(hd));
  }
}

}  // namespace

bool flash_supports_head_dim(int hd) {
  for (int d : kFlashHeadDims)
    if (d == hd) return true;
  return false;
}

void flash_init(int max_smem_optin) {
  for (int hd : kFlashHeadDims)
    with_head_dim(hd, "flash attention init", [&](auto h) { raise_smem_limits<decltype(h)::value>(max_smem_optin); });
}

void flash_forward(cudaStream_t stream, void* out, float* lse, const void* qkv, int B, int T_, int H, int hd,
                   int max_smem_optin) {
  const FlashChunks c = flash_chunks(T_, hd, static_cast<std::size_t>(max_smem_optin));
  with_head_dim(hd, "attention", [&](auto h) { forward_hd<decltype(h)::value>(stream, out, lse, qkv, B, T_, H, c); });
}

void flash_backward(cudaStream_t stream, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                    const float* dsum, int B, int T_, int H, int hd, int max_smem_optin) {
  const FlashChunks c = flash_chunks(T_, hd, static_cast<std::size_t>(max_smem_optin));
  with_head_dim(hd, "attention_backward",
                [&](auto h) { backward_hd<decltype(h)::value>(stream, d_qkv, d_out, qkv, lse, dsum, B, T_, H, c); });
}

}  // namespace vitscale::cuda::attn
