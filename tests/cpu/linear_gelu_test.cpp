// Linear layers and GELU on the CPU backend: forward against double-precision
// loops, backward against finite differences, and the accumulation rules
// (d_weight, d_bias +=; d_in, d_pre =).
#include <array>
#include <bit>
#include <cmath>

#include "kernels/cpu/gelu.h"
#include "kernels/cpu/linear.h"
#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

// out = in · Wᵀ + b in double.
std::vector<double> linear_reference(const std::vector<float>& in, const std::vector<float>& w,
                                     const std::vector<float>& b, int M, int K, int N) {
  std::vector<double> out(static_cast<std::size_t>(M) * N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = b.empty() ? 0.0 : b[n];
      for (int k = 0; k < K; ++k) s += static_cast<double>(in[m * K + k]) * w[n * K + k];
      out[m * N + n] = s;
    }
  return out;
}

// How many elements differ (a count, not the two vectors, when a check fails).
std::size_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t count = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    count += std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(b[i]);
  return count;
}

double gelu_reference(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("linear forward matches a double-precision reference, with and without bias", "[cpu][linear]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  // Small shapes run serially, the large one through the threaded GEMM split.
  for (auto [M, K, N] : {std::tuple{7, 5, 6}, std::tuple{33, 17, 10}, std::tuple{650, 96, 160}}) {
    CAPTURE(M, K, N);
    auto in = rng.normals(M * K), w = rng.normals(N * K, 0.2f), b = rng.normals(N);
    std::vector<float> out(M * N, 123.f);
    be->linear(view(out, {M, N}), view(in, {M, K}), view(w, {N, K}), view(b, {N}));
    CHECK(relative_error(out, linear_reference(in, w, b, M, K, N)) < 1e-6);
    std::vector<float> nobias_out(M * N, -5.f);
    be->linear(view(nobias_out, {M, N}), view(in, {M, K}), view(w, {N, K}), TensorView{});
    CHECK(relative_error(nobias_out, linear_reference(in, w, {}, M, K, N)) < 1e-6);
  }
}

TEST_CASE("linear backward matches finite differences and accumulates parameter gradients", "[cpu][linear]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [M, K, N] : {std::tuple{6, 5, 4}, std::tuple{130, 48, 72}}) {
    CAPTURE(M, K, N);
    auto in = rng.normals(M * K), w = rng.normals(N * K, 0.3f), b = rng.normals(N);
    const auto weights = rng.normals(M * N);  // the loss is ⟨weights, out⟩
    std::vector<float> out(M * N);
    auto loss = [&] {
      be->linear(view(out, {M, N}), view(in, {M, K}), view(w, {N, K}), view(b, {N}));
      return dot(weights, out);
    };
    auto d_out = weights;
    std::vector<float> d_in(M * K, 7.f), d_w(N * K, 0.f), d_b(N, 0.f);
    be->linear_backward(view(d_in, {M, K}), view(d_w, {N, K}), view(d_b, {N}), view(d_out, {M, N}), view(in, {M, K}),
                        view(w, {N, K}));
    CHECK(worst_directional_error(in, d_in, loss, rng, 5e-2f) < 2e-4);
    CHECK(worst_directional_error(w, d_w, loss, rng, 5e-2f) < 2e-4);
    CHECK(worst_directional_error(b, d_b, loss, rng, 5e-2f) < 2e-4);

    // Parameter gradients accumulate; d_in is assigned (the 7s are gone).
    auto d_w2 = rng.normals(N * K), d_b2 = rng.normals(N);
    const auto d_w2_before = d_w2, d_b2_before = d_b2;
    std::vector<float> d_in2(M * K, -3.f);
    be->linear_backward(view(d_in2, {M, K}), view(d_w2, {N, K}), view(d_b2, {N}), view(d_out, {M, N}), view(in, {M, K}),
                        view(w, {N, K}));
    CHECK(d_in2 == d_in);
    for (int i = 0; i < N * K; ++i) REQUIRE(d_w2[i] == Approx(d_w2_before[i] + d_w[i]).margin(1e-5));
    for (int i = 0; i < N; ++i) REQUIRE(d_b2[i] == Approx(d_b2_before[i] + d_b[i]).margin(1e-5));

    // d_in and d_bias may be skipped (the patch embedding needs neither).
    std::vector<float> d_w3(N * K, 0.f);
    be->linear_backward(TensorView{}, view(d_w3, {N, K}), TensorView{}, view(d_out, {M, N}), view(in, {M, K}),
                        TensorView{});
    CHECK(d_w3 == d_w);
  }
}

TEST_CASE("linear backward's input gradient, taken with the weight gradient's row blocks, keeps its own bits",
          "[cpu][linear]") {
  // At this shape (8.4e8 multiply-adds) linear_backward_input cuts M into 24
  // row blocks and the weight gradient into 12 parts; linear_backward computes
  // d_in on the parts' 12 blocks, beside each part. Each row of d_in is a full
  // reduction over N, so the blocking must not change a bit.
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const std::int64_t M = 6400, K = 256, N = 512;
  auto in = rng.normals(M * K), w = rng.normals(N * K, 0.05f), d_out = rng.normals(M * N);
  std::vector<float> d_in(M * K), d_in_alone(M * K), d_w(N * K, 0.f), d_b(N, 0.f);
  std::vector<float> scratch(cpu::linear_backward_weight_scratch_floats(M, K, N));
  REQUIRE(scratch.size() == static_cast<std::size_t>(12 * N * K));
  cpu::linear_backward(d_in.data(), d_w.data(), d_b.data(), d_out.data(), in.data(), w.data(), scratch.data(), M, K, N);
  cpu::linear_backward_input(d_in_alone.data(), d_out.data(), w.data(), M, K, N);
  CHECK(d_in == d_in_alone);
  // And without d_in the weight gradient is the same.
  std::vector<float> d_w2(N * K, 0.f), d_b2(N, 0.f);
  cpu::linear_backward(nullptr, d_w2.data(), d_b2.data(), d_out.data(), in.data(), nullptr, scratch.data(), M, K, N);
  CHECK(d_w2 == d_w);
  CHECK(d_b2 == d_b);
}

TEST_CASE("GELU is the exact erf GELU to float precision", "[cpu][gelu]") {
  // Over the range activations take, against double-precision erfc.
  double worst_value = 0, worst_slope = 0;
  for (double x = -10.0; x <= 10.0; x += 1.0 / 1024 + 1e-7) {
    const float xf = static_cast<float>(x);
    const double ref = gelu_reference(xf);
    const double slope = 0.5 * std::erfc(-xf / std::sqrt(2.0)) + xf * std::exp(-0.5 * xf * xf) / std::sqrt(2 * M_PI);
    // Relative to the value, with an absolute floor of 1e-7·|x| (far tail).
    worst_value = std::max(worst_value, std::fabs(cpu::gelu_value(xf) - ref) / (std::fabs(ref) + 1e-7 * std::fabs(xf)));
    worst_slope = std::max(worst_slope, std::fabs(cpu::gelu_derivative(xf) - slope) / (std::fabs(slope) + 1e-3));
  }
  INFO("max relative error: gelu " << worst_value << ", gelu' " << worst_slope);
  CHECK(worst_value < 1e-5);
  CHECK(worst_slope < 1e-4);
  CHECK(cpu::gelu_value(0.f) == 0.f);
  CHECK(cpu::gelu_value(20.f) == 20.f);
  CHECK(cpu::gelu_value(-20.f) == 0.f);
  CHECK(std::isnan(cpu::gelu_value(std::nanf(""))));
}

TEST_CASE("linear_gelu = linear then GELU, gelu_backward matches finite differences", "[cpu][gelu]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  const int M = 300, K = 24, N = 40;  // M·N > one parallel chunk
  auto in = rng.normals(M * K), w = rng.normals(N * K, 0.5f), b = rng.normals(N);
  std::vector<float> pre(M * N), out(M * N);
  be->linear_gelu(view(pre, {M, N}), view(out, {M, N}), view(in, {M, K}), view(w, {N, K}), view(b, {N}));
  const auto ref_pre = linear_reference(in, w, b, M, K, N);
  CHECK(relative_error(pre, ref_pre) < 1e-6);
  std::vector<double> ref_out(ref_pre.size());
  for (std::size_t i = 0; i < ref_pre.size(); ++i) ref_out[i] = gelu_reference(pre[i]);
  CHECK(relative_error(out, ref_out) < 1e-6);

  const auto weights = rng.normals(M * N);
  auto x = pre;
  std::vector<float> y(M * N);
  auto loss = [&] {
    cpu::gelu_forward(y.data(), x.data(), static_cast<std::int64_t>(x.size()));
    return dot(weights, y);
  };
  auto d_out = weights;
  std::vector<float> d_pre(M * N, 9.f);
  be->gelu_backward(view(d_pre, {M, N}), view(d_out, {M, N}), view(x, {M, N}));
  CHECK(worst_directional_error(x, d_pre, loss, rng, 5e-2f) < 2e-4);
  // d_pre may alias d_out (the model does this in place).
  auto in_place = weights;
  be->gelu_backward(view(in_place, {M, N}), view(in_place, {M, N}), view(x, {M, N}));
  CHECK(in_place == d_pre);
}

TEST_CASE("linear_gelu has the bits of linear then gelu_forward", "[cpu][gelu][linear]") {
  // linear_gelu takes each row block's GELU right after its GEMM; at 1001 x 72
  // -> 200 the 6 blocks' GELU runs start and end off a vector boundary.
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const auto& [M, K, N] : {std::array<int, 3>{6400, 128, 512}, {1001, 72, 200}, {20, 8, 16}}) {
    CAPTURE(M, K, N);
    auto in = rng.normals(M * K), w = rng.normals(N * K, 0.1f), b = rng.normals(N);
    std::vector<float> pre(M * N), out(M * N), pre_alone(M * N), out_alone(M * N);
    be->linear_gelu(view(pre, {M, N}), view(out, {M, N}), view(in, {M, K}), view(w, {N, K}), view(b, {N}));
    be->linear(view(pre_alone, {M, N}), view(in, {M, K}), view(w, {N, K}), view(b, {N}));
    cpu::gelu_forward(out_alone.data(), pre_alone.data(), static_cast<std::int64_t>(pre_alone.size()));
    CHECK(mismatches(pre, pre_alone) == 0);
    CHECK(mismatches(out, out_alone) == 0);
  }
}

TEST_CASE("mlp_backward has the bits of fc2's linear_backward, gelu_backward and fc1's linear_backward",
          "[cpu][gelu][linear]") {
  // 6400 x 128 x 512 is the CPU bench's MLP (12 row parts, d_hidden's rows a
  // multiple of 16 floats); 1001 x 72 x 200 has 6 parts of uneven length whose
  // GELU runs end off a vector boundary; 20 x 8 x 16 is one part (no fusion).
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const auto& [M, D, F] : {std::array<int, 3>{6400, 128, 512}, {1001, 72, 200}, {20, 8, 16}}) {
    CAPTURE(M, D, F);
    const bool with_d_in = M != 1001;  // the middle shape also checks the optional outputs
    auto in = rng.normals(M * D), pre = rng.normals(M * F), d_out = rng.normals(M * D);
    auto fc1_w = rng.normals(F * D, 0.1f), fc2_w = rng.normals(D * F, 0.1f);
    std::vector<float> act(pre.size());
    cpu::gelu_forward(act.data(), pre.data(), static_cast<std::int64_t>(pre.size()));
    // Gradients start non-zero: they accumulate.
    const auto d_fc1_w0 = rng.normals(F * D), d_fc1_b0 = rng.normals(F), d_fc2_w0 = rng.normals(D * F),
               d_fc2_b0 = rng.normals(D);

    auto d_fc1_w = d_fc1_w0, d_fc1_b = d_fc1_b0, d_fc2_w = d_fc2_w0, d_fc2_b = d_fc2_b0;
    std::vector<float> d_in(M * D, 5.f), d_hidden(M * F, 3.f);
    be->linear_backward(view(d_hidden, {M, F}), view(d_fc2_w, {D, F}), with_d_in ? view(d_fc2_b, {D}) : TensorView{},
                        view(d_out, {M, D}), view(act, {M, F}), view(fc2_w, {D, F}));
    be->gelu_backward(view(d_hidden, {M, F}), view(d_hidden, {M, F}), view(pre, {M, F}));
    be->linear_backward(with_d_in ? view(d_in, {M, D}) : TensorView{}, view(d_fc1_w, {F, D}), view(d_fc1_b, {F}),
                        view(d_hidden, {M, F}), view(in, {M, D}), view(fc1_w, {F, D}));

    auto f_fc1_w = d_fc1_w0, f_fc1_b = d_fc1_b0, f_fc2_w = d_fc2_w0, f_fc2_b = d_fc2_b0;
    std::vector<float> f_d_in(M * D, 5.f), f_hidden(M * F, -1.f);
    be->mlp_backward({.d_in = with_d_in ? view(f_d_in, {M, D}) : TensorView{},
                      .d_fc1_weight = view(f_fc1_w, {F, D}),
                      .d_fc1_bias = view(f_fc1_b, {F}),
                      .d_fc2_weight = view(f_fc2_w, {D, F}),
                      .d_fc2_bias = with_d_in ? view(f_fc2_b, {D}) : TensorView{},
                      .d_hidden = view(f_hidden, {M, F}),
                      .d_out = view(d_out, {M, D}),
                      .in = view(in, {M, D}),
                      .pre = view(pre, {M, F}),
                      .act = view(act, {M, F}),
                      .fc1_weight = view(fc1_w, {F, D}),
                      .fc2_weight = view(fc2_w, {D, F})});
    CHECK(mismatches(f_hidden, d_hidden) == 0);
    CHECK(mismatches(f_d_in, d_in) == 0);  // all 5s when skipped
    CHECK(mismatches(f_fc1_w, d_fc1_w) == 0);
    CHECK(mismatches(f_fc1_b, d_fc1_b) == 0);
    CHECK(mismatches(f_fc2_w, d_fc2_w) == 0);
    CHECK(mismatches(f_fc2_b, d_fc2_b) == 0);  // d_fc2_b0 when skipped
    CHECK(f_fc1_w != d_fc1_w0);
  }
}

}  // namespace vitscale::test
