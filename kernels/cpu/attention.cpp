#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_dispatch.h"
#include "kernels/cpu/vector_math.h"

namespace vitscale::cpu {
namespace {

// Eight floats: one AVX register in the AVX2 clone, two SSE registers in the
// baseline one. GCC's vector extension pins the register tiles below, which
// plain loops did not (the compiler spilled the accumulators).
using Float8 = float __attribute__((vector_size(32)));
// By reference, not by value: a 32-byte vector passed in registers would need
// AVX in the baseline clone's ABI. Inlined either way.
inline void load8(Float8& v, const float* p) { std::memcpy(&v, p, sizeof v); }
inline void store8(float* p, const Float8& v) { std::memcpy(p, &v, sizeof v); }

// Register tile: kRows query rows × up to kCols columns of accumulators (8 AVX
// registers). Every product in a head is one of two shapes built from it.
// Columns come in 16-wide tiles and, when a width is an odd multiple of 8, one
// 8-wide tile at the end: ViT heads are narrow (T = 17 and hd = 24 in the CPU
// model), and padding them to 16 wasted up to half of the multiply-adds. The
// tile width changes which lanes are computed together, never the order of a
// sum, so every output is the same bits at either width.
constexpr std::int64_t kRows = 4;
constexpr std::int64_t kLanes = 8;  // floats per Float8
constexpr std::int64_t kCols = 2 * kLanes;

constexpr std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// c (kRows, V·8) at column c0 = a (kRows, K) · b (K, …) there. The K loop is
// innermost so the tile of c stays in registers while a's values are
// broadcast and b's rows stream through.
template <int V>
inline void rows_times_tile(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b,
                            std::int64_t ldb, std::int64_t K, std::int64_t c0) {
  Float8 acc[kRows][V] = {};
  for (std::int64_t k = 0; k < K; ++k) {
    Float8 bk[V];
    for (int v = 0; v < V; ++v) load8(bk[v], b + k * ldb + c0 + v * kLanes);
    for (std::int64_t r = 0; r < kRows; ++r) {
      const float a_rk = a[r * lda + k];
      for (int v = 0; v < V; ++v) acc[r][v] += a_rk * bk[v];
    }
  }
  for (std::int64_t r = 0; r < kRows; ++r)
    for (int v = 0; v < V; ++v) store8(c + r * ldc + c0 + v * kLanes, acc[r][v]);
}

// c (kRows, n) = a (kRows, K) · b (K, n); n a multiple of 8.
inline void rows_times_matrix(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b,
                              std::int64_t ldb, std::int64_t K, std::int64_t n) {
  std::int64_t c0 = 0;
  for (; c0 + kCols <= n; c0 += kCols) rows_times_tile<2>(c, ldc, a, lda, b, ldb, K, c0);
  if (c0 < n) rows_times_tile<1>(c, ldc, a, lda, b, ldb, K, c0);
}

// c_row (…, V·8) at column c0 += Σ_r a[r·lda] · b row r there (r < kRows).
template <int V>
inline void accumulate_tile(float* c_row, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                            std::int64_t c0) {
  Float8 acc[V];
  for (int v = 0; v < V; ++v) load8(acc[v], c_row + c0 + v * kLanes);
  for (std::int64_t r = 0; r < kRows; ++r) {
    const float a_r = a[r * lda];
    for (int v = 0; v < V; ++v) {
      Float8 br;
      load8(br, b + r * ldb + c0 + v * kLanes);
      acc[v] += a_r * br;
    }
  }
  for (int v = 0; v < V; ++v) store8(c_row + c0 + v * kLanes, acc[v]);
}

// c (n, m) += aᵀ (n, kRows) · b (kRows, m); m a multiple of 8.
inline void accumulate_transposed(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b,
                                  std::int64_t ldb, std::int64_t n, std::int64_t m) {
  for (std::int64_t i = 0; i < n; ++i) {
    float* c_row = c + i * ldc;
    std::int64_t c0 = 0;
    for (; c0 + kCols <= m; c0 += kCols) accumulate_tile<2>(c_row, a + i, lda, b, ldb, c0);
    if (c0 < m) accumulate_tile<1>(c_row, a + i, lda, b, ldb, c0);
  }
}

// The padded sizes and per-thread buffers of one head. Padding (keys to a
// multiple of 8, head dim to a multiple of 8, query rows to kRows) is
// zero-filled, so padded lanes compute zeros that are never written out.
struct HeadLayout {
  std::int64_t T, hd, Tp, hdp;
  explicit HeadLayout(std::int64_t tokens, std::int64_t head_dim)
      : T(tokens), hd(head_dim), Tp(round_up(tokens, kLanes)), hdp(round_up(head_dim, kLanes)) {}
  // kt, vt (hd, Tp); kp, vp, dk, dv (Tp, hdp); p, ds (kRows, Tp); qs, dob, ob (kRows, hdp).
  std::size_t floats() const {
    return static_cast<std::size_t>(2 * hd * Tp + 4 * Tp * hdp + 2 * kRows * Tp + 3 * kRows * hdp);
  }
};

struct HeadScratch {
  float *kt, *vt, *kp, *vp, *dk, *dv, *p, *ds, *qs, *dob, *ob;
  HeadScratch(float* base, const HeadLayout& l) {
    float* next = base;
    auto take = [&next](std::int64_t n) {
      float* at = next;
      next += n;
      return at;
    };
    kt = take(l.hd * l.Tp);
    vt = take(l.hd * l.Tp);
    kp = take(l.Tp * l.hdp);
    vp = take(l.Tp * l.hdp);
    dk = take(l.Tp * l.hdp);
    dv = take(l.Tp * l.hdp);
    p = take(kRows * l.Tp);
    ds = take(kRows * l.Tp);
    qs = take(kRows * l.hdp);
    dob = take(kRows * l.hdp);
    ob = take(kRows * l.hdp);
  }
};

// dst (hd, Tp) = src rows (T, hd)ᵀ, zero beyond T.
inline void load_transposed(float* dst, const float* src, std::int64_t ld, const HeadLayout& l) {
  for (std::int64_t d = 0; d < l.hd; ++d) {
    for (std::int64_t j = 0; j < l.T; ++j) dst[d * l.Tp + j] = src[j * ld + d];
    std::fill(dst + d * l.Tp + l.T, dst + (d + 1) * l.Tp, 0.f);
  }
}

// dst (rows_padded, hdp) = src rows (rows, hd) · scale, zero padding.
inline void load_rows(float* dst, std::int64_t rows_padded, const float* src, std::int64_t ld, std::int64_t rows,
                      const HeadLayout& l, float scale = 1.f) {
  for (std::int64_t r = 0; r < rows_padded; ++r) {
    float* out = dst + r * l.hdp;
    if (r < rows) {
      for (std::int64_t d = 0; d < l.hd; ++d) out[d] = src[r * ld + d] * scale;
      std::fill(out + l.hd, out + l.hdp, 0.f);
    } else {
      std::fill(out, out + l.hdp, 0.f);
    }
  }
}

// One head of one image. q, k, v: its first query / key / value, rows `ld`
// apart (3D); out, lse: its first output row (rows ld_out apart) and lse row.
VITSCALE_CPU_CLONES void head_forward(float* out, std::int64_t ld_out, float* lse, const float* q, const float* k,
                                      const float* v, std::int64_t ld, const HeadLayout& l, float scale,
                                      float* scratch) {
  const HeadScratch s(scratch, l);
  load_transposed(s.kt, k, ld, l);
  load_rows(s.vp, l.Tp, v, ld, l.T, l);
  for (std::int64_t i0 = 0; i0 < l.T; i0 += kRows) {
    const std::int64_t rows = std::min(kRows, l.T - i0);
    load_rows(s.qs, kRows, q + i0 * ld, ld, rows, l, scale);
    rows_times_matrix(s.p, l.Tp, s.qs, l.hdp, s.kt, l.Tp, l.hd, l.Tp);  // scores
    for (std::int64_t r = 0; r < kRows; ++r) {
      float* p = s.p + r * l.Tp;
      float row_max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : row_max)
      for (std::int64_t j = 0; j < l.T; ++j) row_max = p[j] > row_max ? p[j] : row_max;
      double row_sum = 0.0;
#pragma omp simd reduction(+ : row_sum)
      for (std::int64_t j = 0; j < l.T; ++j) {
        p[j] = exp_nonpositive(p[j] - row_max);
        row_sum += p[j];
      }
      const auto inv_sum = static_cast<float>(1.0 / row_sum);
#pragma omp simd
      for (std::int64_t j = 0; j < l.T; ++j) p[j] *= inv_sum;
      std::fill(p + l.T, p + l.Tp, 0.f);
      if (r < rows) lse[i0 + r] = row_max + static_cast<float>(std::log(row_sum));
    }
    rows_times_matrix(s.ob, l.hdp, s.p, l.Tp, s.vp, l.hdp, l.T, l.hdp);  // P·V
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy(s.ob + r * l.hdp, s.ob + r * l.hdp + l.hd, out + (i0 + r) * ld_out);
  }
}

// d_q, d_k, d_v: this head's first row in d_qkv (rows `ld` apart).
VITSCALE_CPU_CLONES void head_backward(float* d_q, float* d_k, float* d_v, const float* d_out, const float* out,
                                       std::int64_t ld_out, const float* lse, const float* q, const float* k,
                                       const float* v, std::int64_t ld, const HeadLayout& l, float scale,
                                       float* scratch) {
  const HeadScratch s(scratch, l);
  load_transposed(s.kt, k, ld, l);
  load_transposed(s.vt, v, ld, l);
  load_rows(s.kp, l.Tp, k, ld, l.T, l);
  std::fill(s.dk, s.dk + l.Tp * l.hdp, 0.f);
  std::fill(s.dv, s.dv + l.Tp * l.hdp, 0.f);
  for (std::int64_t i0 = 0; i0 < l.T; i0 += kRows) {
    const std::int64_t rows = std::min(kRows, l.T - i0);
    load_rows(s.qs, kRows, q + i0 * ld, ld, rows, l, scale);
    load_rows(s.dob, kRows, d_out + i0 * ld_out, ld_out, rows, l);
    // P, recomputed from the saved log-sum-exp (zero in padded rows and columns).
    rows_times_matrix(s.p, l.Tp, s.qs, l.hdp, s.kt, l.Tp, l.hd, l.Tp);
    // dP = dO · Vᵀ.
    rows_times_matrix(s.ds, l.Tp, s.dob, l.hdp, s.vt, l.Tp, l.hd, l.Tp);
    for (std::int64_t r = 0; r < kRows; ++r) {
      float* p = s.p + r * l.Tp;
      float* ds = s.ds + r * l.Tp;
      if (r >= rows) {
        std::fill(p, p + l.Tp, 0.f);
        std::fill(ds, ds + l.Tp, 0.f);
        continue;
      }
      // D_i = dO_i · O_i (= Σ_j P_ij dP_ij); dS = P ∘ (dP − D_i).
      const float* o = out + (i0 + r) * ld_out;
      const float* dout = s.dob + r * l.hdp;
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (std::int64_t d = 0; d < l.hd; ++d) dot += static_cast<double>(dout[d]) * o[d];
      const auto d_i = static_cast<float>(dot);
      const float row_lse = lse[i0 + r];
#pragma omp simd
      for (std::int64_t j = 0; j < l.T; ++j) {
        p[j] = exp_nonpositive(p[j] - row_lse);
        ds[j] = p[j] * (ds[j] - d_i);
      }
      std::fill(p + l.T, p + l.Tp, 0.f);
      std::fill(ds + l.T, ds + l.Tp, 0.f);
    }
    // dQ = scale · dS · K;  dK += dSᵀ · (scale · Q);  dV += Pᵀ · dO.
    rows_times_matrix(s.ob, l.hdp, s.ds, l.Tp, s.kp, l.hdp, l.T, l.hdp);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* dq = d_q + (i0 + r) * ld;
      for (std::int64_t d = 0; d < l.hd; ++d) dq[d] = s.ob[r * l.hdp + d] * scale;
    }
    accumulate_transposed(s.dk, l.hdp, s.ds, l.Tp, s.qs, l.hdp, l.T, l.hdp);
    accumulate_transposed(s.dv, l.hdp, s.p, l.Tp, s.dob, l.hdp, l.T, l.hdp);
  }
  for (std::int64_t j = 0; j < l.T; ++j) {
    std::copy(s.dk + j * l.hdp, s.dk + j * l.hdp + l.hd, d_k + j * ld);
    std::copy(s.dv + j * l.hdp, s.dv + j * l.hdp + l.hd, d_v + j * ld);
  }
}

}  // namespace

std::size_t attention_scratch_floats(std::int64_t T, std::int64_t head_dim) { return HeadLayout(T, head_dim).floats(); }

void attention_forward(float* out, float* lse, const float* qkv, float* scratch, int threads, std::int64_t B,
                       std::int64_t T, std::int64_t D, std::int64_t H) {
  const HeadLayout layout(T, D / H);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(layout.hd)));
  const std::size_t slot = layout.floats();
#pragma omp parallel num_threads(threads)
  {
    float* mine = scratch + slot * static_cast<std::size_t>(omp_get_thread_num());
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < B * H; ++bh) {
      const std::int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * T * 3 * D + h * layout.hd;
      head_forward(out + b * T * D + h * layout.hd, D, lse + bh * T, q, q + D, q + 2 * D, 3 * D, layout, scale, mine);
    }
  }
}

void attention_backward(float* d_qkv, const float* d_out, const float* qkv, const float* out, const float* lse,
                        float* scratch, int threads, std::int64_t B, std::int64_t T, std::int64_t D, std::int64_t H) {
  const HeadLayout layout(T, D / H);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(layout.hd)));
  const std::size_t slot = layout.floats();
#pragma omp parallel num_threads(threads)
  {
    float* mine = scratch + slot * static_cast<std::size_t>(omp_get_thread_num());
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < B * H; ++bh) {
      const std::int64_t b = bh / H, h = bh % H;
      const std::int64_t head = b * T * 3 * D + h * layout.hd;
      const std::int64_t act = b * T * D + h * layout.hd;
      const float* q = qkv + head;
      float* dq = d_qkv + head;
      head_backward(dq, dq + D, dq + 2 * D, d_out + act, out + act, D, lse + bh * T, q, q + D, q + 2 * D, 3 * D, layout,
                    scale, mine);
    }
  }
}

}  // namespace vitscale::cpu
