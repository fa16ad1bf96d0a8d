// Softmax cross-entropy with soft targets, the gradient norm and AdamW on the
// CPU backend, each against a double-precision or scalar reference.
#include <cmath>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {

TEST_CASE("cross_entropy with soft targets: losses in double, d_logits = (softmax − t)·scale", "[cpu][loss]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, K] : {std::pair{6, 10}, std::pair{33, 100}}) {
    CAPTURE(B, K);
    auto logits = rng.normals(B * K, 3.f);
    logits[0] += 80.f;  // a large logit must not overflow
    // Soft targets; one row label-smoothed one-hot (0.9 + 0.1/K on the class).
    auto targets = rng.distributions(B, K);
    for (int k = 0; k < K; ++k) targets[K + k] = 0.1f / K + (k == 3 ? 0.9f : 0.f);
    const float grad_scale = 1.f / 64;
    std::vector<float> losses(B), d_logits(B * K, 2.f);
    be->cross_entropy(view(losses, {B}), view(d_logits, {B, K}), view(logits, {B, K}), view(targets, {B, K}),
                      grad_scale);
    std::vector<double> ref(B), ref_grad(B * K);
    for (int b = 0; b < B; ++b) {
      double mx = -1e300, sum = 0;
      for (int k = 0; k < K; ++k) mx = std::max(mx, static_cast<double>(logits[b * K + k]));
      for (int k = 0; k < K; ++k) sum += std::exp(logits[b * K + k] - mx);
      for (int k = 0; k < K; ++k) {
        const double log_p = logits[b * K + k] - mx - std::log(sum);
        ref[b] -= targets[b * K + k] * log_p;
        ref_grad[b * K + k] = (std::exp(log_p) - targets[b * K + k]) * grad_scale;
      }
    }
    CHECK(relative_error(losses, ref) < 1e-7);
    CHECK(relative_error(d_logits, ref_grad) < 1e-6);
    // d_logits is the gradient of grad_scale · Σ_b loss_b (checked away from the
    // +80 logit, whose loss of ~80 would bury the differences in float rounding).
    logits[0] -= 80.f;
    be->cross_entropy(view(losses, {B}), view(d_logits, {B, K}), view(logits, {B, K}), view(targets, {B, K}),
                      grad_scale);
    auto loss = [&] {
      std::vector<float> l(B);
      be->cross_entropy(view(l, {B}), TensorView{}, view(logits, {B, K}), view(targets, {B, K}), grad_scale);
      double s = 0;
      for (float x : l) s += x;
      return s * grad_scale;
    };
    CHECK(worst_directional_error(logits, d_logits, loss, rng, 5e-2f) < 2e-4);
  }
}

TEST_CASE("grad_norm_squared is the double-precision sum of squares", "[cpu][adamw]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (int n : {1, 7, 63, 64, 1000, 300001}) {
    CAPTURE(n);
    auto g = rng.normals(n);
    double ref = 0;
    for (float x : g) ref += static_cast<double>(x) * x;
    std::vector<float> out(1);
    be->grad_norm_squared(view(out, {1}), view(g, {n}));
    CHECK(out[0] == Approx(ref).epsilon(1e-7));
  }
}

namespace {

// torch.optim.AdamW, one scalar at a time, in double.
struct ScalarAdamW {
  double p, m = 0, v = 0;
  void step(double g, const AdamWHyper& h, bool decay, double clip) {
    g *= clip;
    if (decay) p *= 1.0 - static_cast<double>(h.lr) * h.weight_decay;
    m = h.beta1 * m + (1.0 - h.beta1) * g;
    v = h.beta2 * v + (1.0 - h.beta2) * g * g;
    const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), h.step);
    const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), h.step);
    p -= h.lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + h.eps);
  }
};

}  // namespace

TEST_CASE("weight_ema rounds each product and adds, the same bits at every thread count", "[cpu][ema]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const int n = 200003;  // over the kernel's threading threshold, odd
  const auto params = rng.normals(n, 0.1f), start = rng.normals(n, 0.1f);
  std::vector<float> expected = start;
  for (const float decay : {0.5f, 0.999f}) {
    const float take = 1.f - decay;
    for (int i = 0; i < n; ++i) {
      volatile float kept = decay * expected[i];  // volatile: no contraction into an FMA here either
      volatile float taken = take * params[i];
      expected[i] = kept + taken;
    }
  }
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    auto be = make_cpu_backend(threads);
    std::vector<float> ema = start, p = params;
    for (const float decay : {0.5f, 0.999f}) be->weight_ema(view(ema, {n}), view(p, {n}), decay);
    CHECK(ema == expected);
    CHECK(p == params);  // the weights are only read
  }
  auto be = make_cpu_backend();
  std::vector<float> ema = start, p = params, short_p(10);
  CHECK_THROWS_WITH(be->weight_ema(view(ema, {n}), view(short_p, {10}), 0.9f), Catch::Contains("weight_ema"));
  CHECK_THROWS_WITH(be->weight_ema(view(ema, {n}), view(p, {n}), 1.5f), Catch::Contains("decay"));
}

TEST_CASE("adamw matches a scalar AdamW over 3 steps, with no-decay segments and clipping", "[cpu][adamw]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const float max_norm : {0.f, 1.f}) {
    CAPTURE(max_norm);
    // Segments like a small model's: a matrix, a bias, a large matrix, a LayerNorm weight.
    const std::vector<ParamSegment> segments{{0, 300, true}, {300, 20, false}, {320, 40000, true}, {40320, 64, false}};
    const int n = 40384;
    auto params = rng.normals(n);
    std::vector<float> m(n, 0.f), v(n, 0.f);
    std::vector<ScalarAdamW> ref(n);
    for (int i = 0; i < n; ++i) ref[i].p = params[i];
    AdamWHyper hyper;
    hyper.lr = 3e-3f;
    hyper.weight_decay = 0.1f;
    hyper.max_grad_norm = max_norm;
    for (int step = 1; step <= 3; ++step) {
      hyper.step = step;
      auto grads = rng.normals(n, 0.05f);
      std::vector<float> norm_sq(1);
      be->grad_norm_squared(view(norm_sq, {1}), view(grads, {n}));
      // The gradient norm here is ~10: clipping at 1 is active.
      const double clip = max_norm > 0 ? std::min(1.0, max_norm / std::sqrt(static_cast<double>(norm_sq[0]))) : 1.0;
      if (max_norm > 0) REQUIRE(clip < 0.5);
      const auto grads_before = grads;
      be->adamw(view(params, {n}), view(grads, {n}), view(m, {n}), view(v, {n}), segments, hyper, view(norm_sq, {1}));
      CHECK(grads == grads_before);  // the clipping factor is applied on the fly
      for (const auto& s : segments)
        for (std::int64_t i = s.offset; i < s.offset + s.numel; ++i) ref[i].step(grads[i], hyper, s.decay, clip);
      CAPTURE(step);
      // Segment by segment, so that a decay rule applied to the wrong segment
      // cannot hide in the norm of the large one.
      for (const auto& s : segments) {
        CAPTURE(s.offset, s.decay);
        std::vector<float> p_seg(params.begin() + s.offset, params.begin() + s.offset + s.numel);
        std::vector<float> m_seg(m.begin() + s.offset, m.begin() + s.offset + s.numel);
        std::vector<float> v_seg(v.begin() + s.offset, v.begin() + s.offset + s.numel);
        std::vector<double> ref_p, ref_m, ref_v;
        for (std::int64_t i = s.offset; i < s.offset + s.numel; ++i) {
          ref_p.push_back(ref[i].p);
          ref_m.push_back(ref[i].m);
          ref_v.push_back(ref[i].v);
        }
        CHECK(relative_error(p_seg, ref_p) < 1e-6);
        CHECK(relative_error(m_seg, ref_m) < 1e-6);
        CHECK(relative_error(v_seg, ref_v) < 1e-6);
      }
    }
  }
}

}  // namespace vitscale::test
