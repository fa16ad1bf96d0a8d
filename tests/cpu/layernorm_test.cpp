// LayerNorm on the CPU backend: forward against double precision, backward
// against finite differences, the fused residual add, and the accumulation
// rule (d_in, d_gamma, d_beta all +=).
#include <cmath>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

struct LayerNormReference {
  std::vector<double> out, mean, rstd;
};

LayerNormReference layernorm_reference(const std::vector<float>& x, const std::vector<float>& gamma,
                                       const std::vector<float>& beta, int R, int D) {
  LayerNormReference ref{std::vector<double>(x.size()), std::vector<double>(R), std::vector<double>(R)};
  for (int r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < D; ++i) mean += x[r * D + i];
    mean /= D;
    for (int i = 0; i < D; ++i) var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / D + 1e-6);
    for (int i = 0; i < D; ++i) ref.out[r * D + i] = (x[r * D + i] - mean) * rstd * gamma[i] + beta[i];
    ref.mean[r] = mean;
    ref.rstd[r] = rstd;
  }
  return ref;
}

}  // namespace

TEST_CASE("layernorm forward matches double precision and saves mean and rstd", "[cpu][layernorm]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [R, D] : {std::pair{5, 7}, std::pair{50, 128}, std::pair{650, 192}}) {
    CAPTURE(R, D);
    // An offset mean and a large scale: a one-pass variance would lose digits here.
    auto x = rng.normals(R * D, 3.f);
    for (auto& v : x) v += 40.f;
    auto gamma = rng.normals(D), beta = rng.normals(D);
    std::vector<float> out(R * D), mean(R), rstd(R);
    be->layernorm(view(out, {R, D}), view(mean, {R}), view(rstd, {R}), view(x, {R, D}), view(gamma, {D}),
                  view(beta, {D}));
    const auto ref = layernorm_reference(x, gamma, beta, R, D);
    CHECK(relative_error(out, ref.out) < 2e-6);
    CHECK(relative_error(mean, ref.mean) < 1e-7);
    CHECK(relative_error(rstd, ref.rstd) < 1e-6);
  }
}

TEST_CASE("add_layernorm writes the residual sum and normalises it in one pass", "[cpu][layernorm]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  const int R = 97, D = 48;
  auto a = rng.normals(R * D), b = rng.normals(R * D), gamma = rng.normals(D), beta = rng.normals(D);
  std::vector<float> sum(R * D), out(R * D), mean(R), rstd(R);
  be->add_layernorm(view(sum, {R, D}), view(out, {R, D}), view(mean, {R}), view(rstd, {R}), view(a, {R, D}),
                    view(b, {R, D}), view(gamma, {D}), view(beta, {D}));
  for (int i = 0; i < R * D; ++i) REQUIRE(sum[i] == a[i] + b[i]);
  std::vector<float> out2(R * D), mean2(R), rstd2(R);
  be->layernorm(view(out2, {R, D}), view(mean2, {R}), view(rstd2, {R}), view(sum, {R, D}), view(gamma, {D}),
                view(beta, {D}));
  CHECK(out == out2);
  CHECK(mean == mean2);
  CHECK(rstd == rstd2);
  // The sum may be written over one of its inputs (the residual stream in place).
  auto a_in_place = a;
  be->add_layernorm(view(a_in_place, {R, D}), view(out2, {R, D}), view(mean2, {R}), view(rstd2, {R}),
                    view(a_in_place, {R, D}), view(b, {R, D}), view(gamma, {D}), view(beta, {D}));
  CHECK(a_in_place == sum);
  CHECK(out2 == out);
}

TEST_CASE("layernorm backward matches finite differences and accumulates into all three gradients",
          "[cpu][layernorm]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [R, D] : {std::pair{4, 9}, std::pair{130, 64}}) {
    CAPTURE(R, D);
    auto x = rng.normals(R * D, 2.f);
    auto gamma = rng.normals(D), beta = rng.normals(D);
    const auto weights = rng.normals(R * D);
    std::vector<float> out(R * D), mean(R), rstd(R);
    auto forward = [&] {
      be->layernorm(view(out, {R, D}), view(mean, {R}), view(rstd, {R}), view(x, {R, D}), view(gamma, {D}),
                    view(beta, {D}));
    };
    auto loss = [&] {
      forward();
      return dot(weights, out);
    };
    forward();
    auto d_out = weights;
    std::vector<float> d_x(R * D, 0.f), d_gamma(D, 0.f), d_beta(D, 0.f);
    be->layernorm_backward(view(d_x, {R, D}), view(d_gamma, {D}), view(d_beta, {D}), view(d_out, {R, D}),
                           view(x, {R, D}), view(mean, {R}), view(rstd, {R}), view(gamma, {D}));
    const auto saved_mean = mean, saved_rstd = rstd;
    CHECK(worst_directional_error(x, d_x, loss, rng, 5e-2f) < 2e-4);
    CHECK(worst_directional_error(gamma, d_gamma, loss, rng, 5e-2f) < 2e-4);
    CHECK(worst_directional_error(beta, d_beta, loss, rng, 5e-2f) < 2e-4);

    // All three accumulate: start from random values and compare with the sum.
    auto d_x2 = rng.normals(R * D), d_gamma2 = rng.normals(D), d_beta2 = rng.normals(D);
    const auto d_x2_before = d_x2, d_gamma2_before = d_gamma2, d_beta2_before = d_beta2;
    mean = saved_mean;
    rstd = saved_rstd;
    be->layernorm_backward(view(d_x2, {R, D}), view(d_gamma2, {D}), view(d_beta2, {D}), view(d_out, {R, D}),
                           view(x, {R, D}), view(mean, {R}), view(rstd, {R}), view(gamma, {D}));
    for (int i = 0; i < R * D; ++i) REQUIRE(d_x2[i] == Approx(d_x2_before[i] + d_x[i]).margin(1e-5));
    for (int i = 0; i < D; ++i) {
      REQUIRE(d_gamma2[i] == Approx(d_gamma2_before[i] + d_gamma[i]).margin(1e-5));
      REQUIRE(d_beta2[i] == Approx(d_beta2_before[i] + d_beta[i]).margin(1e-5));
    }
  }
}

}  // namespace vitscale::test
