#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/cpu/cpu_dispatch.h"

namespace vitscale::cpu {
namespace {

constexpr bool kX86 =
#if defined(__x86_64__)
    true;
#else
    false;
#endif

int to_int(std::int64_t v) { return static_cast<int>(v); }  // BLAS takes int sizes

// The reference: one cblas_sgemm (OpenBLAS on whatever threads it is set to).
void openblas_gemm(const GemmArgs& g) {
  if (g.a_row_sums) {
    for (std::int64_t i = 0; i < g.m; ++i) {
      double sum = 0;
      for (std::int64_t p = 0; p < g.k; ++p) sum += g.a_transposed ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
      g.a_row_sums[i] += sum;
    }
  }
  if (g.n == 0) return;
  if (g.bias) {  // C = bias, then C += A·B
    for (std::int64_t i = 0; i < g.m; ++i)
      for (std::int64_t j = 0; j < g.n; ++j) g.c[i * g.ldc + j] = g.bias[j];
  }
  cblas_sgemm(CblasRowMajor, g.a_transposed ? CblasTrans : CblasNoTrans, g.b_transposed ? CblasTrans : CblasNoTrans,
              to_int(g.m), to_int(g.n), to_int(g.k), 1.f, g.a, to_int(g.lda), g.b, to_int(g.ldb),
              g.accumulate || g.bias ? 1.f : 0.f, g.c, to_int(g.ldc));
}

// The widest kernel the CPU runs. AVX-512, on a family-26 EPYC, one thread:
// 1.6-1.9x OpenBLAS 0.3.21 on its Haswell kernels (what this project's
// environment sets), 0.94-1.08x on its Cooperlake ones (its own pick). AVX2: 94-101% of
// OpenBLAS's Haswell kernels alone (one thread, the step's shapes, on that
// EPYC at 256 bits). In the whole step it was 5-8% faster at the bench
// configuration in one set of runs and level in another, and level with it
// at the vit-cpu shapes within this VM's noise (docs/results/cpu_step_bench.md).
GemmIsa default_isa() {
  if (gemm_isa_supported(GemmIsa::kAvx512)) return GemmIsa::kAvx512;
  if (gemm_isa_supported(GemmIsa::kAvx2)) return GemmIsa::kAvx2;
  return GemmIsa::kOpenBlas;
}

}  // namespace

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kOpenBlas:
      return "openblas";
    case GemmIsa::kAvx2:
      return "avx2";
    case GemmIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

bool gemm_isa_supported(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kOpenBlas:
      return true;
#if defined(__x86_64__) && defined(__GNUC__)
    case GemmIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
#else
    case GemmIsa::kAvx2:
    case GemmIsa::kAvx512:
      return false;
#endif
  }
  return false;
}

GemmIsa gemm_isa() {
  // The CPU does not change under a process.
  static const GemmIsa isa =
      isa_from_environment("VITSCALE_CPU_GEMM", {GemmIsa::kOpenBlas, GemmIsa::kAvx2, GemmIsa::kAvx512}, gemm_isa_name,
                           gemm_isa_supported, default_isa());
  return isa;
}

GemmBlocking gemm_blocking(std::int64_t m, std::int64_t n, std::int64_t k, GemmTile tile) {
  // A depth up to 512 is one block (the step's K and N are 128-512); beyond it,
  // equal blocks of about 384 (the weight gradient's ~1,000-row parts).
  constexpr std::int64_t kMaxSingleDepth = 512, kDepthTarget = 384;
  constexpr std::int64_t kPackedAFloats = 48 * 1024, kPackedBFloats = 256 * 1024;
  const auto round_up = [](std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; };
  std::int64_t depth = std::max<std::int64_t>(k, 1);
  if (k > kMaxSingleDepth) {
    const std::int64_t blocks = (k + kDepthTarget - 1) / kDepthTarget;
    depth = (k + blocks - 1) / blocks;
  }
  // As many whole tiles as fit the packing budget (at least one), no more than the operand has.
  const std::int64_t rows =
      std::min<std::int64_t>(std::max<std::int64_t>(kPackedAFloats / depth / tile.rows * tile.rows, tile.rows),
                             round_up(std::max<std::int64_t>(m, 1), tile.rows));
  const std::int64_t cols =
      std::min<std::int64_t>(std::max<std::int64_t>(kPackedBFloats / depth / tile.cols * tile.cols, tile.cols),
                             round_up(std::max<std::int64_t>(n, 1), tile.cols));
  return {depth, rows, cols};
}

GemmArgs dense_gemm_args(float* c, const float* a, bool a_transposed, const float* b, bool b_transposed, std::int64_t m,
                         std::int64_t n, std::int64_t k) {
  return GemmArgs{.c = c,
                  .ldc = n,
                  .a = a,
                  .lda = a_transposed ? m : k,
                  .a_transposed = a_transposed,
                  .b = b,
                  .ldb = b_transposed ? k : n,
                  .b_transposed = b_transposed,
                  .m = m,
                  .n = n,
                  .k = k,
                  .accumulate = false,
                  .bias = nullptr};
}

void gemm(GemmIsa isa, const GemmArgs& args) {
  if (args.accumulate && args.bias)
    throw std::invalid_argument("gemm: a bias with accumulate (C += A·B) is not supported");
  if (!gemm_isa_supported(isa))
    throw std::invalid_argument(std::string("gemm: this CPU does not support ") + gemm_isa_name(isa));
  // Empty products (k = 0 leaves C = bias or 0) go to the reference, which handles them.
  if (isa == GemmIsa::kOpenBlas || args.m == 0 || args.n == 0 || args.k == 0 || !kX86) {
    if (args.m > 0 && (args.n > 0 || args.a_row_sums)) openblas_gemm(args);
    return;
  }
#if defined(__x86_64__)
  const GemmTile tile = isa == GemmIsa::kAvx512 ? gemm_avx512_tile() : gemm_avx2_tile();
  const GemmBlocking blocking = gemm_blocking(args.m, args.n, args.k, tile);
  const std::size_t a_floats = static_cast<std::size_t>(blocking.rows * blocking.depth);
  const std::size_t b_floats = static_cast<std::size_t>(blocking.cols * blocking.depth);
  const auto packed = std::make_unique_for_overwrite<float[]>(a_floats + b_floats);
  if (isa == GemmIsa::kAvx512)
    gemm_avx512(args, packed.get(), packed.get() + a_floats);
  else
    gemm_avx2(args, packed.get(), packed.get() + a_floats);
#endif
}

}  // namespace vitscale::cpu
