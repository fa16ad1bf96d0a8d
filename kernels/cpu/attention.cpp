#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_dispatch.h"
#include "kernels/cpu/vector_math.h"

namespace vitscale::cpu {
namespace {

// Eight floats: one AVX register (two SSE ones in the baseline kernels).
// GCC's vector extension pins the register tiles below, which plain loops did
// not (the compiler spilled the accumulators).
using Float8 = float __attribute__((vector_size(32)));
// The 16-wide column tile, in two forms with the same lanes and the same
// multiply-add chain per lane (so the same bits):
//   - Float16, one AVX-512 register, for the x86-64-v4 kernels;
//   - Float8Pair, two AVX registers, for the v3 (AVX2) and baseline kernels.
// A 64-byte vector type has no register on an AVX2 target: GCC kept each
// Float16 accumulator on the stack and moved it through 16-byte pieces
// (~110 moves per 12 multiply-adds in the v3 code), which held attention to
// ~13 GFLOP/s on an AVX2-only EPYC. The pair's halves each get a register.
using Float16 = float __attribute__((vector_size(64)));
struct Float8Pair {
  Float8 lo, hi;
};
// Defined inline in the kernels that use them, with the target of each.
#define VITSCALE_INLINE inline __attribute__((always_inline))
VITSCALE_INLINE Float8Pair operator*(float a, const Float8Pair& b) { return {a * b.lo, a * b.hi}; }
VITSCALE_INLINE Float8Pair operator+(const Float8Pair& x, const Float8Pair& y) { return {x.lo + y.lo, x.hi + y.hi}; }

// By reference, not by value: a 32- or 64-byte vector passed in registers
// would need AVX in the baseline kernels' ABI. Inlined either way.
template <typename Vec>
VITSCALE_INLINE void load_vec(Vec& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}
template <typename Vec>
VITSCALE_INLINE void store_vec(float* p, const Vec& v) {
  std::memcpy(p, &v, sizeof v);
}
VITSCALE_INLINE void load_vec(Float8Pair& v, const float* p) {
  load_vec(v.lo, p);
  load_vec(v.hi, p + 8);
}
VITSCALE_INLINE void store_vec(float* p, const Float8Pair& v) {
  store_vec(p, v.lo);
  store_vec(p + 8, v.hi);
}

// Register tile: up to kRows rows × up to kCols columns of accumulators (with
// Float8Pair 12 of the 16 AVX registers, 2 more hold b's row, 1 the
// broadcast a value; with Float16 6 zmm, one instruction per row where two
// ymm ones were: attention 12-26% faster forward, 7-17% backward at
// T = 17 and 50, vit_bench --device cpu, AMD EPYC family 26). Every
// product in a head is built from it. Columns come in 16-wide tiles and, when
// a width is an odd multiple of 8, one 8-wide tile at the end: ViT heads are
// narrow (T = 17 and hd = 24 in the CPU model), and padding them to 16 wasted
// up to half of the multiply-adds. Rows come in blocks of kRows and one
// shorter block at the end, never padded. Each output element is one
// multiply-add chain over k in order, whatever the tile, so the tiling never
// changes a bit.
constexpr std::int64_t kRows = 6;
constexpr std::int64_t kLanes = 8;          // floats per Float8
constexpr std::int64_t kCols = 2 * kLanes;  // floats per 16-wide tile (Wide)

constexpr std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// The helpers below must be inlined into the per-target head kernels: an
// out-of-line copy is compiled for the baseline target only (SSE2), which made
// the products 6x slower when GCC declined to inline `product`.

// A matrix read in place: element (r, k) at p[r·row + k·col]. A row-major
// matrix has col = 1; one stored transposed has row = 1: P and dS are kept
// key-major (Pᵀ, dSᵀ) and read as P and dS (P·V, dQ) this way, never copied.
struct Strided {
  const float* p;
  std::int64_t row, col;
  Strided from_row(std::int64_t r) const { return {p + r * row, row, col}; }
};

// acc (R, width of Vec) += a column k (R) · b row k from column c0; `first`
// assigns instead (the same bits as adding to zero, without zeroing a tile
// that GCC then kept in memory).
template <typename Vec, int R, bool first>
VITSCALE_INLINE void tile_step(Vec (&acc)[R], Strided a, const float* b, std::int64_t ldb, std::int64_t k,
                               std::int64_t c0) {
  Vec bk;
  load_vec(bk, b + k * ldb + c0);
  const float* ak = a.p + k * a.col;
  for (int r = 0; r < R; ++r) {
    const float a_rk = ak[r * a.row];
    acc[r] = first ? a_rk * bk : acc[r] + a_rk * bk;
  }
}

// c (R, width of Vec) at column c0 = a (R, K) · b (K, …) there; K ≥ 1. The K
// loop is innermost so the tile of c stays in registers while a's values are
// broadcast and b's rows stream through.
template <typename Vec, int R>
VITSCALE_INLINE void tile_product(float* c, std::int64_t ldc, Strided a, const float* b, std::int64_t ldb,
                                  std::int64_t K, std::int64_t c0) {
  Vec acc[R];
  tile_step<Vec, R, true>(acc, a, b, ldb, 0, c0);
  for (std::int64_t k = 1; k < K; ++k) tile_step<Vec, R, false>(acc, a, b, ldb, k, c0);
  for (int r = 0; r < R; ++r) store_vec(c + r * ldc + c0, acc[r]);
}

// c (R, n) = a (R, K) · b (K, n); n a multiple of 8. Wide: Float16 or
// Float8Pair, the 16-wide tile.
template <typename Wide, int R>
VITSCALE_INLINE void rows_product(float* c, std::int64_t ldc, Strided a, const float* b, std::int64_t ldb,
                                  std::int64_t K, std::int64_t n) {
  std::int64_t c0 = 0;
  for (; c0 + kCols <= n; c0 += kCols) tile_product<Wide, R>(c, ldc, a, b, ldb, K, c0);
  if (c0 < n) tile_product<Float8, R>(c, ldc, a, b, ldb, K, c0);
}

// The last block of a product: `rows` (< kRows) rows, dispatched to the tile
// of that height.
template <typename Wide, int R>
VITSCALE_INLINE void tail_rows_product(std::int64_t rows, float* c, std::int64_t ldc, Strided a, const float* b,
                                       std::int64_t ldb, std::int64_t K, std::int64_t n) {
  if constexpr (R > 0) {
    if (rows == R)
      rows_product<Wide, R>(c, ldc, a, b, ldb, K, n);
    else
      tail_rows_product<Wide, R - 1>(rows, c, ldc, a, b, ldb, K, n);
  }
}

// c (M, n) = a (M, K) · b (K, n); n a multiple of 8.
template <typename Wide>
VITSCALE_INLINE void product(float* c, std::int64_t ldc, Strided a, const float* b, std::int64_t ldb, std::int64_t M,
                             std::int64_t K, std::int64_t n) {
  std::int64_t i0 = 0;
  for (; i0 + kRows <= M; i0 += kRows) rows_product<Wide, kRows>(c + i0 * ldc, ldc, a.from_row(i0), b, ldb, K, n);
  tail_rows_product<Wide, kRows - 1>(M - i0, c + i0 * ldc, ldc, a.from_row(i0), b, ldb, K, n);
}

// The padded sizes and per-thread buffers of one head. Queries are padded to
// a multiple of 8 where they are a product's columns (the transposed scores),
// the head dim to a multiple of 8 where it is (P·V, dQ, dK, dV); the padding
// of every b operand is zero-filled. A product's inner dimension is never
// padded (K = hd or T).
struct HeadLayout {
  std::int64_t T, hd, Tp, hdp;
  explicit HeadLayout(std::int64_t tokens, std::int64_t head_dim)
      : T(tokens), hd(head_dim), Tp(round_up(tokens, kLanes)), hdp(round_up(head_dim, kLanes)) {}
  // qt, dot (hd, Tp); p, ds (T, Tp), key-major (Pᵀ, dSᵀ); kp, vp, qp, dop, res (T, hdp); kp and qp hold
  // scale · K, scale · Q.
  std::size_t floats() const { return static_cast<std::size_t>(2 * hd * Tp + 2 * T * Tp + 5 * T * hdp); }
};

struct HeadScratch {
  float *qt, *dot, *p, *ds, *kp, *vp, *qp, *dop, *res;
  HeadScratch(float* base, const HeadLayout& l) {
    float* next = base;
    auto take = [&next](std::int64_t n) {
      float* at = next;
      next += n;
      return at;
    };
    qt = take(l.hd * l.Tp);
    dot = take(l.hd * l.Tp);
    p = take(l.T * l.Tp);
    ds = take(l.T * l.Tp);
    kp = take(l.T * l.hdp);
    vp = take(l.T * l.hdp);
    qp = take(l.T * l.hdp);
    dop = take(l.T * l.hdp);
    res = take(l.T * l.hdp);
  }
};

using Int8 = std::int32_t __attribute__((vector_size(32)));  // a shuffle's lane indices

// dst (8, ld_dst) = src (8, ld_src)ᵀ in registers: three rounds of two-input
// shuffles (GCC emits unpcklps/unpckhps, shufps and vperm2f128 for them).
VITSCALE_INLINE void transpose8x8(float* dst, std::int64_t ld_dst, const float* src, std::int64_t ld_src) {
  Float8 r[8], t[8];
  for (int i = 0; i < 8; ++i) load_vec(r[i], src + i * ld_src);
  for (int i = 0; i < 8; i += 2) {  // t[i] = r_i0 r_(i+1)0 r_i1 r_(i+1)1 | same for columns 4, 5
    t[i] = __builtin_shuffle(r[i], r[i + 1], Int8{0, 8, 1, 9, 4, 12, 5, 13});
    t[i + 1] = __builtin_shuffle(r[i], r[i + 1], Int8{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 8; i += 4) {  // r[i + c] = rows i..i+3 of column c | of column c + 4
    r[i] = __builtin_shuffle(t[i], t[i + 2], Int8{0, 1, 8, 9, 4, 5, 12, 13});
    r[i + 1] = __builtin_shuffle(t[i], t[i + 2], Int8{2, 3, 10, 11, 6, 7, 14, 15});
    r[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], Int8{0, 1, 8, 9, 4, 5, 12, 13});
    r[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], Int8{2, 3, 10, 11, 6, 7, 14, 15});
  }
  for (int c = 0; c < 4; ++c) {  // column c: rows 0-3 from r[c], rows 4-7 from r[c + 4]
    store_vec(dst + c * ld_dst, __builtin_shuffle(r[c], r[c + 4], Int8{0, 1, 2, 3, 8, 9, 10, 11}));
    store_vec(dst + (c + 4) * ld_dst, __builtin_shuffle(r[c], r[c + 4], Int8{4, 5, 6, 7, 12, 13, 14, 15}));
  }
}

// dst (hd, Tp) = src rows (T, hd)ᵀ, zero beyond T: 8×8 blocks in registers,
// the edges (T or hd not a multiple of 8) element by element. The scalar
// gather it replaced took ~15% of the forward.
VITSCALE_INLINE void load_transposed(float* dst, const float* src, std::int64_t ld, const HeadLayout& l) {
  const std::int64_t T8 = l.T / kLanes * kLanes, hd8 = l.hd / kLanes * kLanes;
  for (std::int64_t j = 0; j < T8; j += kLanes)
    for (std::int64_t d = 0; d < hd8; d += kLanes) transpose8x8(dst + d * l.Tp + j, l.Tp, src + j * ld + d, ld);
  for (std::int64_t j = 0; j < l.T; ++j)
    for (std::int64_t d = j < T8 ? hd8 : 0; d < l.hd; ++d) dst[d * l.Tp + j] = src[j * ld + d];
  for (std::int64_t d = 0; d < l.hd; ++d) std::fill(dst + d * l.Tp + l.T, dst + (d + 1) * l.Tp, 0.f);
}

// dst (T, hdp) = src rows (T, hd) · scale, zero beyond hd. (A loop, not
// std::copy: a call to memmove per 24–64-float row cost more than the copy.)
VITSCALE_INLINE void load_rows(float* dst, const float* src, std::int64_t ld, const HeadLayout& l, float scale = 1.f) {
  for (std::int64_t r = 0; r < l.T; ++r) {
#pragma omp simd
    for (std::int64_t d = 0; d < l.hd; ++d) dst[r * l.hdp + d] = src[r * ld + d] * scale;
    std::fill(dst + r * l.hdp + l.hd, dst + (r + 1) * l.hdp, 0.f);
  }
}

// c rows (T, hd), `ldc` apart, = a (T, K) · b (K, hdp). Straight into c when
// hd is a multiple of 8 (the tiles then write exactly hd columns), else into
// res (T, hdp) and copied: either way nothing past a row's hd floats is written.
template <typename Wide>
VITSCALE_INLINE void product_to_rows(float* c, std::int64_t ldc, Strided a, const float* b, std::int64_t K,
                                     const HeadLayout& l, float* res) {
  if (l.hd == l.hdp) {
    product<Wide>(c, ldc, a, b, l.hdp, l.T, K, l.hd);
    return;
  }
  product<Wide>(res, l.hdp, a, b, l.hdp, l.T, K, l.hdp);
  for (std::int64_t r = 0; r < l.T; ++r) std::copy(res + r * l.hdp, res + r * l.hdp + l.hd, c + r * ldc);
}

// The softmax runs down the columns of the transposed scores Sᵀ (T keys,
// Tp queries): every loop is elementwise along a key's row of Tp (a multiple
// of 8) queries, so it vectorises with no horizontal reductions and no tails.
// Row-wise, at T = 17, those and the per-row setup took ~45% of the forward.
// Columns go in blocks of kQueryBlock for the per-query state on the stack.
constexpr std::int64_t kQueryBlock = 64;

// Columns [i0, i0 + n) of st (T, Tp) ← exp(scale · st − shift_i) for query
// i, and acc_i = Σ_j of them in double; with kTimesDp each term is first
// multiplied by dPᵀ's element (the backward's D_i = Σ_j P_ij dP_ij).
template <bool kTimesDp>
VITSCALE_INLINE void exp_columns(float* st, const float* dpt, const float* shift, double* acc, std::int64_t i0,
                                 std::int64_t n, const HeadLayout& l, float scale) {
  for (std::int64_t i = 0; i < n; ++i) acc[i] = 0.0;
  for (std::int64_t j = 0; j < l.T; ++j)
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) {
      float& x = st[j * l.Tp + i0 + i];
      x = exp_nonpositive(x * scale - shift[i]);
      acc[i] += kTimesDp ? static_cast<double>(x) * dpt[j * l.Tp + i0 + i] : x;
    }
}

// Pᵀ = softmax over each column of scale · Sᵀ, in place, for the queries
// [i0, i0 + n) (n ≤ kQueryBlock); lse (n) of the real ones (i < T). The scale is
// applied inside the exp's argument (scale > 0, so a column's maximum is
// scale · max s); the sums are in double.
VITSCALE_INLINE void softmax_query_block(float* st, float* lse, std::int64_t i0, std::int64_t n, const HeadLayout& l,
                                         float scale) {
  float shift[kQueryBlock];  // then 1 / sum
  double sum[kQueryBlock];
  for (std::int64_t i = 0; i < n; ++i) shift[i] = st[i0 + i];
  for (std::int64_t j = 1; j < l.T; ++j)
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) {
      const float x = st[j * l.Tp + i0 + i];
      shift[i] = x > shift[i] ? x : shift[i];
    }
  for (std::int64_t i = 0; i < n; ++i) shift[i] *= scale;
  exp_columns<false>(st, nullptr, shift, sum, i0, n, l, scale);
  for (std::int64_t i = 0; i < n && i0 + i < l.T; ++i) lse[i0 + i] = shift[i] + static_cast<float>(std::log(sum[i]));
  for (std::int64_t i = 0; i < n; ++i) shift[i] = static_cast<float>(1.0 / sum[i]);
  for (std::int64_t j = 0; j < l.T; ++j)
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) st[j * l.Tp + i0 + i] *= shift[i];
}

// One head of one image. q, k, v: its first query / key / value, rows `ld`
// apart (3D); out, lse: its first output row (rows ld_out apart) and lse row.
template <typename Wide>
VITSCALE_INLINE void head_forward(float* out, std::int64_t ld_out, float* lse, const float* q, const float* k,
                                  const float* v, std::int64_t ld, const HeadLayout& l, float scale, float* scratch) {
  const HeadScratch s(scratch, l);
  load_transposed(s.qt, q, ld, l);
  load_rows(s.vp, v, ld, l);
  product<Wide>(s.p, l.Tp, {k, ld, 1}, s.qt, l.Tp, l.T, l.hd, l.Tp);  // Sᵀ = K·Qᵀ (T, Tp)
  for (std::int64_t i0 = 0; i0 < l.Tp; i0 += kQueryBlock)
    softmax_query_block(s.p, lse, i0, std::min(kQueryBlock, l.Tp - i0), l, scale);
  product_to_rows<Wide>(out, ld_out, {s.p, 1, l.Tp}, s.vp, l.T, l, s.res);  // O = P·V, P read from Pᵀ
}

// dSᵀ = Pᵀ ∘ (dPᵀ − D) for the queries [i0, i0 + n) (n ≤ kQueryBlock), where
// Pᵀ = exp(scale · Sᵀ − lse) is recomputed from the scores in p, dPᵀ = V·dOᵀ
// is in ds, and D_i = Σ_j P_ij dP_ij (= dO_i · O_i, which FlashAttention uses
// because it never holds a whole row of P; here it is at hand, and O need not
// be read back from memory). Both are overwritten in place.
VITSCALE_INLINE void softmax_backward_query_block(float* pt, float* dst, const float* lse, std::int64_t i0,
                                                  std::int64_t n, const HeadLayout& l, float scale) {
  float lse_i[kQueryBlock];  // then D_i
  double d[kQueryBlock];
  for (std::int64_t i = 0; i < n; ++i) lse_i[i] = i0 + i < l.T ? lse[i0 + i] : 0.f;  // padded queries: any finite value
  exp_columns<true>(pt, dst, lse_i, d, i0, n, l, scale);
  for (std::int64_t i = 0; i < n; ++i) lse_i[i] = static_cast<float>(d[i]);
  for (std::int64_t j = 0; j < l.T; ++j)
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) {
      float& ds = dst[j * l.Tp + i0 + i];
      ds = pt[j * l.Tp + i0 + i] * (ds - lse_i[i]);
    }
}

// d_q, d_k, d_v: this head's first row in d_qkv (rows `ld` apart). The whole
// head's Pᵀ and dSᵀ (T, Tp each) are formed first, then dQ, dK and dV are
// three plain products reading them in place (dQ through Strided with
// row = 1), so each gradient row is written once.
template <typename Wide>
VITSCALE_INLINE void head_backward(float* d_q, float* d_k, float* d_v, const float* d_out, std::int64_t ld_out,
                                   const float* lse, const float* q, const float* k, const float* v, std::int64_t ld,
                                   const HeadLayout& l, float scale, float* scratch) {
  const HeadScratch s(scratch, l);
  load_transposed(s.qt, q, ld, l);
  load_transposed(s.dot, d_out, ld_out, l);
  load_rows(s.kp, k, ld, l, scale);
  load_rows(s.qp, q, ld, l, scale);
  load_rows(s.dop, d_out, ld_out, l);
  product<Wide>(s.p, l.Tp, {k, ld, 1}, s.qt, l.Tp, l.T, l.hd, l.Tp);    // Sᵀ = K·Qᵀ (T, Tp)
  product<Wide>(s.ds, l.Tp, {v, ld, 1}, s.dot, l.Tp, l.T, l.hd, l.Tp);  // dPᵀ = V·dOᵀ (T, Tp)
  for (std::int64_t i0 = 0; i0 < l.Tp; i0 += kQueryBlock)
    softmax_backward_query_block(s.p, s.ds, lse, i0, std::min(kQueryBlock, l.Tp - i0), l, scale);
  // dQ = dS·(scale · K);  dK = dSᵀ·(scale · Q);  dV = Pᵀ·dO.
  product_to_rows<Wide>(d_q, ld, {s.ds, 1, l.Tp}, s.kp, l.T, l, s.res);
  product_to_rows<Wide>(d_k, ld, {s.ds, l.Tp, 1}, s.qp, l.T, l, s.res);
  product_to_rows<Wide>(d_v, ld, {s.p, l.Tp, 1}, s.dop, l.T, l, s.res);
}

// Where head bh = (b, h) lives: its first query row in qkv (B, T, 3D), its
// key and value rows D and 2D further on, and its first row in the (B, T, D)
// activations (out, d_out).
struct HeadAt {
  std::int64_t qkv, act;
  HeadAt(std::int64_t bh, std::int64_t T, std::int64_t D, std::int64_t H)
      : qkv(bh / H * T * 3 * D + bh % H * (D / H)), act(bh / H * T * D + bh % H * (D / H)) {}
};

// Asks for `rows` rows of `width` floats, `ld` apart, to be brought into
// cache (for writing if `write`). A head's rows are short (hd floats) and
// 3D floats apart in qkv: loading them as the head starts left the core
// waiting on memory, so each head's rows are requested while the previous
// head computes (forward and backward ~10% faster at T = 17, ~5% at T = 50). Inlined: GCC takes a function
// that only prefetches for one without effects and drops the calls to it.
VITSCALE_INLINE void prefetch_rows(const float* src, std::int64_t ld, std::int64_t rows, std::int64_t width,
                                   bool write) {
  constexpr std::uintptr_t kLine = 64;
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto first = reinterpret_cast<std::uintptr_t>(src + r * ld) & ~(kLine - 1);
    const auto last = reinterpret_cast<std::uintptr_t>(src + r * ld + width - 1);
    for (std::uintptr_t line = first; line <= last; line += kLine) {
      const auto* at = reinterpret_cast<const void*>(line);
      write ? __builtin_prefetch(at, 1) : __builtin_prefetch(at);
    }
  }
}

// One call's operands, for either direction (the other direction's are null).
struct AttentionCall {
  float* out;          // (B, T, D): forward
  float* lse_out;      // (B, H, T): forward
  float* d_qkv;        // (B, T, 3D): backward
  const float* d_out;  // (B, T, D): backward
  const float* lse;    // (B, H, T): backward
  const float* qkv;    // (B, T, 3D)
  std::int64_t B, T, D, H;
  HeadLayout layout;
  float scale;  // 1 / √hd
};

template <typename Wide>
VITSCALE_INLINE void forward_head(const AttentionCall& c, std::int64_t bh, float* scratch) {
  const HeadAt at(bh, c.T, c.D, c.H);
  const float* q = c.qkv + at.qkv;
  head_forward<Wide>(c.out + at.act, c.D, c.lse_out + bh * c.T, q, q + c.D, q + 2 * c.D, 3 * c.D, c.layout, c.scale,
                     scratch);
}

template <typename Wide>
VITSCALE_INLINE void backward_head(const AttentionCall& c, std::int64_t bh, float* scratch) {
  const HeadAt at(bh, c.T, c.D, c.H);
  const float* q = c.qkv + at.qkv;
  float* dq = c.d_qkv + at.qkv;
  head_backward<Wide>(dq, dq + c.D, dq + 2 * c.D, c.d_out + at.act, c.D, c.lse + bh * c.T, q, q + c.D, q + 2 * c.D,
                      3 * c.D, c.layout, c.scale, scratch);
}

// One direction for one head bh, compiled once per ISA below: a target
// attribute each, not target_clones, because the 16-wide tile's type differs
// by ISA (Float16 only where AVX-512 gives it a register), and because the
// tests call every copy this CPU runs, by name, to compare them.
using HeadKernel = void (*)(const AttentionCall& c, std::int64_t bh, float* scratch);

void forward_baseline(const AttentionCall& c, std::int64_t bh, float* s) { forward_head<Float8Pair>(c, bh, s); }
void backward_baseline(const AttentionCall& c, std::int64_t bh, float* s) { backward_head<Float8Pair>(c, bh, s); }
#ifdef VITSCALE_X86_LEVELS
VITSCALE_TARGET_X86_64_V3 void forward_avx2(const AttentionCall& c, std::int64_t bh, float* s) {
  forward_head<Float8Pair>(c, bh, s);
}
VITSCALE_TARGET_X86_64_V3 void backward_avx2(const AttentionCall& c, std::int64_t bh, float* s) {
  backward_head<Float8Pair>(c, bh, s);
}
VITSCALE_TARGET_X86_64_V4 void forward_avx512(const AttentionCall& c, std::int64_t bh, float* s) {
  forward_head<Float16>(c, bh, s);
}
VITSCALE_TARGET_X86_64_V4 void backward_avx512(const AttentionCall& c, std::int64_t bh, float* s) {
  backward_head<Float16>(c, bh, s);
}
#endif

HeadKernel head_kernel(AttentionIsa isa, bool backward) {
  if (!attention_isa_supported(isa))
    throw std::invalid_argument(std::string("attention: this CPU does not run the ") + attention_isa_name(isa) +
                                " kernels");
  switch (isa) {
#ifdef VITSCALE_X86_LEVELS
    case AttentionIsa::kAvx512:
      return backward ? backward_avx512 : forward_avx512;
    case AttentionIsa::kAvx2:
      return backward ? backward_avx2 : forward_avx2;
#endif
    default:
      return backward ? backward_baseline : forward_baseline;
  }
}

// Brings head bh's rows into cache: its q, k and v rows, and in the forward
// its output rows (for writing), in the backward its d_out rows and its d_qkv
// rows (for writing).
VITSCALE_INLINE void prefetch_head(const AttentionCall& c, std::int64_t bh) {
  const HeadAt at(bh, c.T, c.D, c.H);
  const std::int64_t hd = c.layout.hd;
  for (int part = 0; part < 3; ++part) {
    prefetch_rows(c.qkv + at.qkv + part * c.D, 3 * c.D, c.T, hd, false);
    if (c.d_qkv) prefetch_rows(c.d_qkv + at.qkv + part * c.D, 3 * c.D, c.T, hd, true);
  }
  if (c.d_qkv)
    prefetch_rows(c.d_out + at.act, c.D, c.T, hd, false);
  else
    prefetch_rows(c.out + at.act, c.D, c.T, hd, true);
}

// Every (image, head) pair once, split statically over the threads, each
// thread prefetching its next head (consecutive under a static schedule)
// while it computes this one.
void run_heads(HeadKernel kernel, const AttentionCall& c, float* scratch, int threads) {
  const std::int64_t heads = c.B * c.H;
  const std::size_t slot = c.layout.floats();
#pragma omp parallel num_threads(threads)
  {
    float* mine = scratch + slot * static_cast<std::size_t>(omp_get_thread_num());
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < heads; ++bh) {
      if (bh + 1 < heads) prefetch_head(c, bh + 1);
      kernel(c, bh, mine);
    }
  }
}

float head_scale(const HeadLayout& l) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(l.hd))); }

}  // namespace

const char* attention_isa_name(AttentionIsa isa) {
  switch (isa) {
    case AttentionIsa::kBaseline:
      return "baseline";
    case AttentionIsa::kAvx2:
      return "avx2";
    case AttentionIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

bool attention_isa_supported(AttentionIsa isa) {
  switch (isa) {
    case AttentionIsa::kBaseline:
      return true;
#ifdef VITSCALE_X86_LEVELS
    case AttentionIsa::kAvx2:
      return __builtin_cpu_supports("x86-64-v3");
    case AttentionIsa::kAvx512:
      return __builtin_cpu_supports("x86-64-v4");
#else
    case AttentionIsa::kAvx2:
    case AttentionIsa::kAvx512:
      return false;
#endif
  }
  return false;
}

AttentionIsa attention_isa() {
  // The CPU does not change under a process.
  static const AttentionIsa isa = [] {
    const AttentionIsa widest = attention_isa_supported(AttentionIsa::kAvx512) ? AttentionIsa::kAvx512
                                : attention_isa_supported(AttentionIsa::kAvx2) ? AttentionIsa::kAvx2
                                                                               : AttentionIsa::kBaseline;
    return isa_from_environment("VITSCALE_CPU_ATTENTION",
                                {AttentionIsa::kBaseline, AttentionIsa::kAvx2, AttentionIsa::kAvx512},
                                attention_isa_name, attention_isa_supported, widest);
  }();
  return isa;
}

std::size_t attention_scratch_floats(std::int64_t T, std::int64_t head_dim) { return HeadLayout(T, head_dim).floats(); }

void attention_forward(float* out, float* lse, const float* qkv, float* scratch, int threads, std::int64_t B,
                       std::int64_t T, std::int64_t D, std::int64_t H, AttentionIsa isa) {
  const HeadLayout layout(T, D / H);
  const AttentionCall call{out, lse, nullptr, nullptr, nullptr, qkv, B, T, D, H, layout, head_scale(layout)};
  run_heads(head_kernel(isa, false), call, scratch, threads);
}

void attention_backward(float* d_qkv, const float* d_out, const float* qkv, [[maybe_unused]] const float* out,
                        const float* lse, float* scratch, int threads, std::int64_t B, std::int64_t T, std::int64_t D,
                        std::int64_t H, AttentionIsa isa) {
  const HeadLayout layout(T, D / H);
  const AttentionCall call{nullptr, nullptr, d_qkv, d_out, lse, qkv, B, T, D, H, layout, head_scale(layout)};
  run_heads(head_kernel(isa, true), call, scratch, threads);
}

}  // namespace vitscale::cpu
