// The CPU backend's determinism contract at its GEMM entry points: linear,
// linear_gelu and linear_backward give the same bits whether 1, 2, 3 or 4
// OpenMP threads run them.
//
// Why shapes matter here: OpenBLAS chooses micro-kernels and edge-tile paths
// per call from M, N and K, and the order in which an output element's
// products are summed follows those paths. A split of the work that depends on
// the thread count (say M/2 rows per thread) hands OpenBLAS different shapes at
// different thread counts; whether the bits then differ depends on which
// kernels this CPU's OpenBLAS picked (they did on AMD Zen, with the Haswell
// kernels, and not at every shape with the SkylakeX ones). The shapes below make
// per-thread slices that are multiples of no micro-kernel tile: 194 rows = 2 x 97,
// 291 = 3 x 97, N = 160 and N = 97 output features.
#include <cstring>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

struct GemmShape {
  std::int64_t M, K, N;
};

// Every output of the three linear entry points, for one thread count.
struct LinearOutputs {
  std::vector<float> out, pre, gelu_out, d_in, d_weight, d_bias;
};

// Bitwise equality, reporting how many elements differ (0 when equal).
std::size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

LinearOutputs run_linear_ops(const GemmShape& s, int threads, std::uint64_t seed) {
  omp_set_num_threads(threads);
  auto be = make_cpu_backend(threads);
  Rng rng(seed);
  const std::int64_t M = s.M, K = s.K, N = s.N;
  auto in = rng.normals(M * K), weight = rng.normals(N * K, 0.1f), bias = rng.normals(N);
  auto d_out = rng.normals(M * N);
  LinearOutputs r;
  r.out.assign(M * N, 0.f);
  r.pre.assign(M * N, 0.f);
  r.gelu_out.assign(M * N, 0.f);
  r.d_in.assign(M * K, 0.f);
  // Parameter gradients accumulate: start from non-zero values.
  r.d_weight = rng.normals(N * K);
  r.d_bias = rng.normals(N);
  be->linear(view(r.out, {M, N}), view(in, {M, K}), view(weight, {N, K}), view(bias, {N}));
  be->linear_gelu(view(r.pre, {M, N}), view(r.gelu_out, {M, N}), view(in, {M, K}), view(weight, {N, K}), TensorView{});
  be->linear_backward(view(r.d_in, {M, K}), view(r.d_weight, {N, K}), view(r.d_bias, {N}), view(d_out, {M, N}),
                      view(in, {M, K}), view(weight, {N, K}));
  return r;
}

}  // namespace

TEST_CASE("linear, linear_gelu and linear_backward give the same bits for 1, 2, 3 and 4 threads",
          "[cpu][contract][threads]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  ThreadCountGuard restore;
  // Small enough to run serially ({8, 12, 20}), just past the parallel
  // threshold, and a ViT block's sizes (the CPU step benchmark's qkv GEMM).
  const GemmShape shape = GENERATE(GemmShape{8, 12, 20}, GemmShape{194, 96, 160}, GemmShape{291, 50, 97},
                                   GemmShape{1300, 96, 160}, GemmShape{3200, 128, 384});
  CAPTURE(shape.M, shape.K, shape.N);
  const LinearOutputs one = run_linear_ops(shape, 1, seed);
  for (int threads : {2, 3, 4}) {
    CAPTURE(threads);
    const LinearOutputs many = run_linear_ops(shape, threads, seed);
    CHECK(differing(many.out, one.out) == 0);
    CHECK(differing(many.pre, one.pre) == 0);
    CHECK(differing(many.gelu_out, one.gelu_out) == 0);
    CHECK(differing(many.d_in, one.d_in) == 0);
    CHECK(differing(many.d_weight, one.d_weight) == 0);
    CHECK(differing(many.d_bias, one.d_bias) == 0);
  }
  // And the same run twice gives the same bits (no scheduling dependence).
  const LinearOutputs again = run_linear_ops(shape, 2, seed), twice = run_linear_ops(shape, 2, seed);
  CHECK(differing(again.d_weight, twice.d_weight) == 0);
  CHECK(differing(again.out, twice.out) == 0);
}

}  // namespace vitscale::test
