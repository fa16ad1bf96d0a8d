// gemm.h — the single-threaded SGEMM under the CPU linear layers.
//
// Two implementations of one contract, C = [C +] A·B [+ bias]:
//   - vitscale's own packed, register-tiled kernel (gemm_tiles.h), compiled
//     twice, for AVX-512 (12x32 tiles in 24 zmm accumulators) and for AVX2+FMA
//     (6x16 tiles in 12 ymm);
//   - OpenBLAS's cblas_sgemm, the reference.
// The default is the widest this CPU runs (gemm.cpp, default_isa, says why).
// Why our own: OpenBLAS's speed here depends on which of its kernel sets it
// runs. This project's machines set OPENBLAS_CORETYPE=Haswell in their
// environment (not vitscale's doing), and on an AVX-512 CPU that leaves half
// the core's width unused. Left to pick on the family-26
// EPYC, OpenBLAS 0.3.21 takes its Cooperlake kernels, and this kernel is
// then at 94-108% of them, one thread, at the step's shapes. Ours does not
// depend on that setting. It also gives the same bits on AVX2 and AVX-512,
// and it reads the bias gradient while it packs (a_row_sums). At the step's
// thin shapes (K or N = 128, M ≈ 1,000 rows per block) it is as fast as a
// BLAS tuned for large square GEMMs. Threads are the caller's business
// (linear.cpp cuts every GEMM into blocks fixed by its shape); each block is
// one call here.
//
// Summation order, for the determinism contract: element (i, j) is
//   c_ij = (((bias_j or C_ij or 0) + s_0) + s_1) + ...,
// s_q the sum over the q-th depth block (gemm_blocking: a function of the shape
// only), each summed in depth order with one FMA per step from 0.
// So a call gives the same bits every time, on every thread, for a given ISA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vitscale::cpu {

enum class GemmIsa { kOpenBlas, kAvx2, kAvx512 };

// "openblas", "avx2", "avx512".
const char* gemm_isa_name(GemmIsa isa);
// Whether this CPU runs `isa` (OpenBLAS: always).
bool gemm_isa_supported(GemmIsa isa);
// The ISA the linear layers use: VITSCALE_CPU_GEMM (openblas, avx2 or avx512)
// when set, else the widest this CPU runs (AVX-512, AVX2, else OpenBLAS). Decided once per process; an
// unknown or unsupported value throws std::invalid_argument naming it.
GemmIsa gemm_isa();

// One GEMM, row-major storage throughout:
//   A (m, k): a[i·lda + p], or a[p·lda + i] when a_transposed;
//   B (k, n): b[p·ldb + j], or b[j·ldb + p] when b_transposed;
//   C (m, n): c[i·ldc + j].
// accumulate: C += A·B; otherwise C = A·B + bias (bias (n) or nullptr; a bias
// with accumulate is refused).
// a_row_sums (m) or nullptr: a_row_sums[i] += Σ_p A(i, p), in double, p in
// order, read while A is packed (the bias gradient is the row sums of d_outᵀ,
// which the weight gradient packs anyway: one pass over d_out instead of two).
struct GemmArgs {
  float* c;
  std::int64_t ldc;
  const float* a;
  std::int64_t lda;
  bool a_transposed;
  const float* b;
  std::int64_t ldb;
  bool b_transposed;
  std::int64_t m, n, k;
  bool accumulate;
  const float* bias;
  double* a_row_sums = nullptr;
};

// C (m, n) = A (m, k) · B (k, n) with every operand stored densely (each
// leading dimension the stored row's length, ldc = n); set the other fields
// (accumulate, bias, row sums) on the result.
GemmArgs dense_gemm_args(float* c, const float* a, bool a_transposed, const float* b, bool b_transposed, std::int64_t m,
                         std::int64_t n, std::int64_t k);

// Runs on the calling thread; allocates its packing buffers (≤ 1.25 MiB).
void gemm(GemmIsa isa, const GemmArgs& args);

// ---- shared by the ISA-specific translation units (gemm_avx2.cpp, gemm_avx512.cpp)

// A tile of `rows` x `cols` elements of C held in registers.
struct GemmTile {
  int rows, cols;
};

// Cache blocking: depth blocks of `depth` (the A panel of one tile stays in L1
// across its whole depth), row blocks of `rows` (packed A ≤ 192 KiB, in L2)
// and column blocks of `cols` (packed B ≤ 1 MiB). A function of the shape and
// the tile only.
struct GemmBlocking {
  std::int64_t depth, rows, cols;
};
// Defined in gemm.cpp (baseline code): an inline function here would be
// compiled into the AVX-512 translation unit too, and the linker could keep
// that copy for every caller.
GemmBlocking gemm_blocking(std::int64_t m, std::int64_t n, std::int64_t k, GemmTile tile);

// Each ISA's kernel: its tile, and the blocked GEMM over caller-owned packing
// buffers of blocking.rows·depth (A) and blocking.cols·depth (B) floats.
GemmTile gemm_avx2_tile();
void gemm_avx2(const GemmArgs& args, float* packed_a, float* packed_b);
GemmTile gemm_avx512_tile();
void gemm_avx512(const GemmArgs& args, float* packed_a, float* packed_b);

}  // namespace vitscale::cpu
