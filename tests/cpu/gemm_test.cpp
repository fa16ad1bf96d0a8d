// The CPU SGEMM (kernels/cpu/gemm.h): every implementation this CPU runs
// (OpenBLAS, vitscale's AVX2 and AVX-512 kernels) against a double-precision
// loop, over shapes that hit every edge: partial tiles in rows and columns,
// depths split into blocks (k > 512), column blocks (n past the packed-B
// limit), strided operands (ld larger than the row), both transpositions of
// both operands, the bias, accumulation and A's row sums. And the summation-order contract:
// the two vitscale kernels give the same bits as each other, call after call.
#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "tests/cpu/cpu_test_util.h"
#include "tests/test_skip.h"

namespace vitscale::test {
namespace {

using cpu::GemmArgs;
using cpu::GemmIsa;

std::vector<GemmIsa> supported_isas() {
  std::vector<GemmIsa> isas;
  for (GemmIsa isa : {GemmIsa::kOpenBlas, GemmIsa::kAvx2, GemmIsa::kAvx512})
    if (cpu::gemm_isa_supported(isa)) isas.push_back(isa);
  return isas;
}

// Operands stored with a leading dimension `pad` floats longer than needed, the
// padding filled with NaN so that reading it shows in the result.
struct Problem {
  std::int64_t m, n, k;
  bool a_t, b_t;
  std::int64_t pad;
  std::vector<float> a, b, bias, c0;
  std::int64_t lda() const { return (a_t ? m : k) + pad; }
  std::int64_t ldb() const { return (b_t ? k : n) + pad; }
  std::int64_t ldc() const { return n + pad; }
  float a_at(std::int64_t i, std::int64_t p) const { return a_t ? a[p * lda() + i] : a[i * lda() + p]; }
  float b_at(std::int64_t p, std::int64_t j) const { return b_t ? b[j * ldb() + p] : b[p * ldb() + j]; }
};

Problem make_problem(Rng& rng, std::int64_t m, std::int64_t n, std::int64_t k, bool a_t, bool b_t, std::int64_t pad) {
  Problem q{m, n, k, a_t, b_t, pad, {}, {}, {}, {}};
  const auto fill = [&](std::vector<float>& v, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
    v.assign(static_cast<std::size_t>(rows * ld), std::nanf(""));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) v[r * ld + c] = rng.normal();
  };
  fill(q.a, a_t ? k : m, a_t ? m : k, q.lda());
  fill(q.b, b_t ? n : k, b_t ? k : n, q.ldb());
  fill(q.c0, m, n, q.ldc());
  q.bias = rng.normals(n);
  return q;
}

// The largest |c − reference| relative to the reference's scale (√k for unit
// normals), over the live elements; padding of C must be untouched (NaN stays).
double worst_error(const Problem& q, const std::vector<float>& c, bool accumulate, bool with_bias, bool& padding_kept) {
  double worst = 0;
  padding_kept = true;
  for (std::int64_t i = 0; i < q.m; ++i) {
    for (std::int64_t j = 0; j < q.n; ++j) {
      double ref = accumulate ? q.c0[i * q.ldc() + j] : (with_bias ? q.bias[j] : 0.0);
      for (std::int64_t p = 0; p < q.k; ++p) ref += static_cast<double>(q.a_at(i, p)) * q.b_at(p, j);
      worst = std::max(worst, std::fabs(c[i * q.ldc() + j] - ref) / std::sqrt(static_cast<double>(q.k) + 1.0));
    }
    for (std::int64_t j = q.n; j < q.ldc(); ++j) padding_kept = padding_kept && std::isnan(c[i * q.ldc() + j]);
  }
  return worst;
}

// The product of q into c, its padding and transpositions as q has them.
GemmArgs args_of(const Problem& q, float* c) {
  GemmArgs args = cpu::dense_gemm_args(c, q.a.data(), q.a_t, q.b.data(), q.b_t, q.m, q.n, q.k);
  args.lda = q.lda();
  args.ldb = q.ldb();
  args.ldc = q.ldc();
  return args;
}

// With row_sums (m, starting at 1.0 each, to show they are added to), also
// the row sums of A.
std::vector<float> run(GemmIsa isa, const Problem& q, bool accumulate, bool with_bias,
                       std::vector<double>* row_sums = nullptr) {
  if (row_sums) row_sums->assign(static_cast<std::size_t>(q.m), 1.0);
  std::vector<float> c = q.c0;
  GemmArgs args = args_of(q, c.data());
  args.accumulate = accumulate;
  args.bias = with_bias ? q.bias.data() : nullptr;
  args.a_row_sums = row_sums ? row_sums->data() : nullptr;
  cpu::gemm(isa, args);
  return c;
}

}  // namespace

TEST_CASE("gemm matches a double-precision reference on every ISA this CPU runs, at every edge", "[cpu][gemm]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  INFO("this CPU: openblas" << (cpu::gemm_isa_supported(GemmIsa::kAvx2) ? ", avx2" : "")
                            << (cpu::gemm_isa_supported(GemmIsa::kAvx512) ? ", avx512" : ""));
  // (m, n, k): one element; partial tiles both ways; the step's thin shapes;
  // a depth split into blocks; n past one column block at a deep k.
  const std::tuple<int, int, int> shapes[] = {{1, 1, 1},      {5, 7, 3},       {13, 33, 17},   {37, 130, 128},
                                              {100, 64, 600}, {250, 96, 1067}, {24, 1100, 520}};
  for (GemmIsa isa : supported_isas()) {
    for (auto [m, n, k] : shapes) {
      for (int layout = 0; layout < 4; ++layout) {
        const bool a_t = layout & 1, b_t = layout & 2;
        const Problem q = make_problem(rng, m, n, k, a_t, b_t, /*pad=*/(m + layout) % 3);
        for (auto [accumulate, with_bias] : {std::pair{false, false}, std::pair{false, true}, std::pair{true, false}}) {
          CAPTURE(cpu::gemm_isa_name(isa), m, n, k, a_t, b_t, accumulate, with_bias);
          bool padding_kept = false;
          std::vector<double> row_sums;
          const double err =
              worst_error(q, run(isa, q, accumulate, with_bias, &row_sums), accumulate, with_bias, padding_kept);
          REQUIRE(err < 1e-5);
          REQUIRE(padding_kept);
          // Row sums of A (the bias gradient's column sums of d_out), in double: exact to ~1e-12.
          for (std::int64_t i = 0; i < q.m; ++i) {
            double ref = 1.0;
            for (std::int64_t p = 0; p < q.k; ++p) ref += q.a_at(i, p);
            REQUIRE(row_sums[i] == Approx(ref).margin(1e-9));
          }
        }
      }
    }
  }
}

TEST_CASE("vitscale's AVX2 and AVX-512 GEMMs give the same bits, every call", "[cpu][gemm]") {
  if (!cpu::gemm_isa_supported(GemmIsa::kAvx2) || !cpu::gemm_isa_supported(GemmIsa::kAvx512))
    VS_SKIP("this CPU lacks AVX2 + FMA or AVX-512: only one of the two kernels runs here");
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  // Both sum each element in depth order with one FMA per step, over the same
  // depth blocks; only the tile (which elements share registers) differs.
  for (auto [m, n, k] : {std::tuple{250, 96, 1067}, std::tuple{61, 200, 128}}) {
    const Problem q = make_problem(rng, m, n, k, /*a_t=*/m == 250, /*b_t=*/m != 250, 0);
    const auto avx2 = run(GemmIsa::kAvx2, q, false, true);
    CHECK(run(GemmIsa::kAvx2, q, false, true) == avx2);
    CHECK(run(GemmIsa::kAvx512, q, false, true) == avx2);
    std::vector<double> sums_avx2, sums_avx512;
    CHECK(run(GemmIsa::kAvx512, q, true, false, &sums_avx512) == run(GemmIsa::kAvx2, q, true, false, &sums_avx2));
    CHECK(sums_avx512 == sums_avx2);
  }
}

TEST_CASE("gemm refuses what it cannot do, naming it", "[cpu][gemm]") {
  std::vector<float> a(4, 1.f), b(4, 1.f), c(4), bias(2, 0.f);
  GemmArgs bias_with_accumulate = cpu::dense_gemm_args(c.data(), a.data(), false, b.data(), false, 2, 2, 2);
  bias_with_accumulate.accumulate = true;
  bias_with_accumulate.bias = bias.data();
  CHECK_THROWS_WITH(cpu::gemm(GemmIsa::kOpenBlas, bias_with_accumulate), Catch::Contains("bias with accumulate"));
  if (!cpu::gemm_isa_supported(GemmIsa::kAvx512)) {
    GemmArgs plain = bias_with_accumulate;
    plain.bias = nullptr;
    CHECK_THROWS_WITH(cpu::gemm(GemmIsa::kAvx512, plain), Catch::Contains("does not support avx512"));
  }
  // The ISA the linear layers use is one this CPU runs.
  CHECK(cpu::gemm_isa_supported(cpu::gemm_isa()));
}

}  // namespace vitscale::test
