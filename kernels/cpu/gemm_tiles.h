// gemm_tiles.h — the body of vitscale's CPU SGEMM, written once, compiled once
// per instruction set: gemm_avx512.cpp and gemm_avx2.cpp include it with their
// own -m flags, so that `Vec` is a zmm or a ymm register. Included by those two
// files only.
//
// The classic three-level scheme (Goto's): for each column block of B and depth
// block, B is packed into column panels [depth][kTileCols]; for each row block
// of A, A is packed into row panels [depth][kTileRows]; then every
// kTileRows x kTileCols tile of C is one register-resident microkernel call:
// per depth step, two vector loads of B, kTileRows broadcasts of A and
// 2·kTileRows FMAs. Panels past the edge of A or B are zero-padded, so every
// tile computes in full and only its store is clipped.
//
// Everything here has internal linkage and uses no standard-library template:
// an inline function instantiated under -mavx512f and merged by the linker
// with the baseline copy could otherwise run AVX-512 code on an AVX2 machine.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/gemm.h"

namespace vitscale::cpu {
namespace {

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
constexpr int kTileRows = 12;  // 24 accumulators + 2 B vectors + 1 broadcast of 32 zmm
inline Vec vec_load(const float* p) { return _mm512_loadu_ps(p); }
inline void vec_store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec vec_broadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vec vec_fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vec_add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec vec_zero() { return _mm512_setzero_ps(); }
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int kLanes = 8;
constexpr int kTileRows = 6;  // 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm
inline Vec vec_load(const float* p) { return _mm256_loadu_ps(p); }
inline void vec_store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec vec_broadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline Vec vec_fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vec_add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec vec_zero() { return _mm256_setzero_ps(); }
#else
#error "gemm_tiles.h needs AVX-512F or AVX2 and FMA"
#endif
constexpr int kTileCols = 2 * kLanes;
constexpr GemmTile kTile{kTileRows, kTileCols};

inline std::int64_t min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

// Rows [row0, row0 + rows) x depth [p0, p0 + depth) of A into panels of
// kTileRows rows, each [depth][kTileRows]; rows past `rows` are zeros. With
// `row_sums`, also row_sums[i] += Σ_p A(row0 + i, p) (double, p in order).
void pack_a(float* packed,  // (ceil(rows / kTileRows), depth, kTileRows)
            const GemmArgs& g, std::int64_t row0, std::int64_t rows, std::int64_t p0, std::int64_t depth,
            double* row_sums) {  // (rows) or nullptr
  for (std::int64_t r = 0; r < rows; r += kTileRows) {
    float* panel = packed + (r / kTileRows) * depth * kTileRows;
    const std::int64_t live = min64(kTileRows, rows - r);
    if (g.a_transposed) {  // A(i, p) = a[p·lda + i]: each depth step copies live contiguous floats
      double sums[kTileRows] = {};
      for (std::int64_t p = 0; p < depth; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + row0 + r;
        for (std::int64_t i = 0; i < live; ++i) panel[p * kTileRows + i] = src[i];
        if (row_sums)
          for (std::int64_t i = 0; i < live; ++i) sums[i] += src[i];
      }
      if (row_sums)
        for (std::int64_t i = 0; i < live; ++i) row_sums[r + i] += sums[i];
    } else {  // A(i, p) = a[i·lda + p]: each row is contiguous in depth
      for (std::int64_t i = 0; i < live; ++i) {
        const float* src = g.a + (row0 + r + i) * g.lda + p0;
        double sum = 0;
        for (std::int64_t p = 0; p < depth; ++p) panel[p * kTileRows + i] = src[p];
        if (row_sums) {
          for (std::int64_t p = 0; p < depth; ++p) sum += src[p];
          row_sums[r + i] += sum;
        }
      }
    }
    for (std::int64_t i = live; i < kTileRows; ++i)
      for (std::int64_t p = 0; p < depth; ++p) panel[p * kTileRows + i] = 0.f;
  }
}

// Depth [p0, p0 + depth) x columns [col0, col0 + cols) of B into panels of
// kTileCols columns, each [depth][kTileCols]; columns past `cols` are zeros.
void pack_b(float* packed,  // (ceil(cols / kTileCols), depth, kTileCols)
            const GemmArgs& g, std::int64_t p0, std::int64_t depth, std::int64_t col0, std::int64_t cols) {
  for (std::int64_t c = 0; c < cols; c += kTileCols) {
    float* panel = packed + (c / kTileCols) * depth * kTileCols;
    const std::int64_t live = min64(kTileCols, cols - c);
    if (g.b_transposed) {  // B(p, j) = b[j·ldb + p]: each column is contiguous in depth
      for (std::int64_t j = 0; j < live; ++j) {
        const float* src = g.b + (col0 + c + j) * g.ldb + p0;
        for (std::int64_t p = 0; p < depth; ++p) panel[p * kTileCols + j] = src[p];
      }
    } else {  // B(p, j) = b[p·ldb + j]
      for (std::int64_t p = 0; p < depth; ++p) {
        const float* src = g.b + (p0 + p) * g.ldb + col0 + c;
        for (std::int64_t j = 0; j < live; ++j) panel[p * kTileCols + j] = src[j];
      }
    }
    for (std::int64_t p = 0; p < depth; ++p)
      for (std::int64_t j = live; j < kTileCols; ++j) panel[p * kTileCols + j] = 0.f;
  }
}

// How a tile's sum lands in C: added to C, or stored with the bias (or alone).
struct TileStore {
  bool add_to_c;
  const float* bias;  // (kTileCols) of this tile's columns, or nullptr
};

// C tile (live_rows, live_cols) ⊕= A panel · B panel over `depth` steps.
void multiply_tile(std::int64_t depth,
                   const float* a_panel,  // (depth, kTileRows)
                   const float* b_panel,  // (depth, kTileCols)
                   float* c, std::int64_t ldc, std::int64_t live_rows, std::int64_t live_cols, TileStore store) {
  Vec acc[kTileRows][2];
#pragma GCC unroll 16
  for (int i = 0; i < kTileRows; ++i) acc[i][0] = acc[i][1] = vec_zero();
  for (std::int64_t p = 0; p < depth; ++p) {
    const Vec b0 = vec_load(b_panel), b1 = vec_load(b_panel + kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < kTileRows; ++i) {
      const Vec ai = vec_broadcast(a_panel + i);
      acc[i][0] = vec_fma(ai, b0, acc[i][0]);
      acc[i][1] = vec_fma(ai, b1, acc[i][1]);
    }
    a_panel += kTileRows;
    b_panel += kTileCols;
  }
  if (live_rows == kTileRows && live_cols == kTileCols) {
#pragma GCC unroll 16
    for (int i = 0; i < kTileRows; ++i) {
      float* row = c + i * ldc;
      Vec lo = acc[i][0], hi = acc[i][1];
      if (store.add_to_c) {
        lo = vec_add(vec_load(row), lo);
        hi = vec_add(vec_load(row + kLanes), hi);
      } else if (store.bias) {
        lo = vec_add(vec_load(store.bias), lo);
        hi = vec_add(vec_load(store.bias + kLanes), hi);
      }
      vec_store(row, lo);
      vec_store(row + kLanes, hi);
    }
    return;
  }
  // An edge tile: the same sums, stored element by element (same rounding).
  // (Unrolled: an accumulator indexed at run time would keep the whole array in
  // memory, and GCC would then store it on every depth step.)
  float sums[kTileRows * kTileCols];
#pragma GCC unroll 16
  for (int i = 0; i < kTileRows; ++i) {
    vec_store(sums + i * kTileCols, acc[i][0]);
    vec_store(sums + i * kTileCols + kLanes, acc[i][1]);
  }
  for (std::int64_t i = 0; i < live_rows; ++i) {
    float* row = c + i * ldc;
    for (std::int64_t j = 0; j < live_cols; ++j) {
      const float s = sums[i * kTileCols + j];
      row[j] = store.add_to_c ? row[j] + s : (store.bias ? store.bias[j] + s : s);
    }
  }
}

// The whole GEMM over the caller's packing buffers (sizes: gemm_blocking).
void blocked_gemm(const GemmArgs& g, float* packed_a, float* packed_b) {
  const GemmBlocking blocking = gemm_blocking(g.m, g.n, g.k, kTile);
  for (std::int64_t col0 = 0; col0 < g.n; col0 += blocking.cols) {
    const std::int64_t cols = min64(blocking.cols, g.n - col0);
    for (std::int64_t p0 = 0; p0 < g.k; p0 += blocking.depth) {
      const std::int64_t depth = min64(blocking.depth, g.k - p0);
      // The first depth block stores (with the bias) unless accumulating; later ones add.
      const bool add_to_c = g.accumulate || p0 > 0;
      const float* bias = add_to_c || !g.bias ? nullptr : g.bias + col0;
      pack_b(packed_b, g, p0, depth, col0, cols);
      for (std::int64_t row0 = 0; row0 < g.m; row0 += blocking.rows) {
        const std::int64_t rows = min64(blocking.rows, g.m - row0);
        // A is packed once per column block; its row sums are read on the first.
        pack_a(packed_a, g, row0, rows, p0, depth, g.a_row_sums && col0 == 0 ? g.a_row_sums + row0 : nullptr);
        // B's panel stays in L1 while A's panels stream past it from L2.
        for (std::int64_t c = 0; c < cols; c += kTileCols) {
          const float* b_panel = packed_b + (c / kTileCols) * depth * kTileCols;
          for (std::int64_t r = 0; r < rows; r += kTileRows) {
            const std::int64_t at = (row0 + r) * g.ldc + col0 + c;
            const std::int64_t live_rows = min64(kTileRows, rows - r), live_cols = min64(kTileCols, cols - c);
            multiply_tile(depth, packed_a + (r / kTileRows) * depth * kTileRows, b_panel, g.c + at, g.ldc, live_rows,
                          live_cols, TileStore{add_to_c, bias ? bias + c : nullptr});
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace vitscale::cpu
