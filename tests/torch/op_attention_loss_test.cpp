// CPU backend ops against LibTorch autograd in float64: attention (written out
// as softmax(q·kᵀ·hd^-½)·v on timm's qkv layout), soft-target cross-entropy,
// the gradient norm, and AdamW against torch::optim::AdamW with a no-decay
// group and clip_grad_norm_. Bar: ‖ours − ref‖/‖ref‖ ≤ 1e-5.
#include "tests/torch/torch_test_util.h"

namespace vitscale::test {
namespace {
constexpr double kTolerance = 1e-5;
}

TEST_CASE("torch parity: attention forward, log-sum-exp and backward", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, T, D, H] : {std::tuple{3, 50, 96, 1}, std::tuple{2, 65, 96, 3}, std::tuple{4, 50, 128, 4},
                            std::tuple{2, 65, 192, 6}, std::tuple{2, 50, 192, 3}, std::tuple{1, 65, 24, 4}}) {
    CAPTURE(B, T, D, H);
    const int hd = D / H;
    auto qkv = rng.normals(static_cast<std::size_t>(B) * T * 3 * D, 1.2f);
    auto d_out = rng.normals(static_cast<std::size_t>(B) * T * D);
    std::vector<float> out(d_out.size()), lse(static_cast<std::size_t>(B) * H * T), d_qkv(qkv.size());
    be->attention(view(out, {B, T, D}), view(lse, {B, H, T}), view(qkv, {B, T, 3 * D}), H);
    be->attention_backward(view(d_qkv, {B, T, 3 * D}), view(d_out, {B, T, D}), view(qkv, {B, T, 3 * D}),
                           view(out, {B, T, D}), view(lse, {B, H, T}), H);

    // timm's Attention: qkv.reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4).
    auto tqkv = to_double(qkv, {B, T, 3 * D}, true);
    auto parts = tqkv.reshape({B, T, 3, H, hd}).permute({2, 0, 3, 1, 4});
    auto q = parts[0], k = parts[1], v = parts[2];
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
    auto tout = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, D});
    auto tlse = torch::logsumexp(scores, -1);  // (B, H, T)
    weighted_sum(tout, d_out).backward();
    CHECK(error_vs(out, tout) < kTolerance);
    CHECK(error_vs(lse, tlse) < kTolerance);
    CHECK(error_vs(d_qkv, tqkv.grad()) < kTolerance);
  }
}

TEST_CASE("torch parity: cross-entropy with soft targets, losses and d_logits", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, K] : {std::pair{64, 10}, std::pair{37, 100}}) {
    CAPTURE(B, K);
    auto logits = rng.normals(B * K, 4.f);
    auto targets = rng.distributions(B, K);
    // Label smoothing (0.1) on a one-hot row, as the data pipeline produces it.
    for (int k = 0; k < K; ++k) targets[k] = 0.1f / K + (k == 2 ? 0.9f : 0.f);
    const float grad_scale = 1.f / 256;
    std::vector<float> losses(B), d_logits(B * K);
    be->cross_entropy(view(losses, {B}), view(d_logits, {B, K}), view(logits, {B, K}), view(targets, {B, K}),
                      grad_scale);
    auto tz = to_double(logits, {B, K}, true);
    auto tlosses = -(to_double(targets, {B, K}) * torch::log_softmax(tz, -1)).sum(-1);
    (tlosses.sum() * grad_scale).backward();
    CHECK(error_vs(losses, tlosses) < kTolerance);
    CHECK(error_vs(d_logits, tz.grad()) < kTolerance);
    // One-hot targets: the same as torch's hard-label cross_entropy.
    std::vector<float> one_hot(B * K, 0.f);
    std::vector<std::int64_t> labels(B);
    for (int b = 0; b < B; ++b) one_hot[b * K + (labels[b] = rng.integer(0, K - 1))] = 1.f;
    be->cross_entropy(view(losses, {B}), TensorView{}, view(logits, {B, K}), view(one_hot, {B, K}), 1.f);
    auto hard =
        torch::nn::functional::cross_entropy(to_double(logits, {B, K}), torch::tensor(labels),
                                             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    CHECK(error_vs(losses, hard) < kTolerance);
  }
}

TEST_CASE("torch parity: AdamW with a no-decay group and gradient clipping, 4 steps", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const float max_norm : {0.f, 0.5f}) {
    CAPTURE(max_norm);
    // A weight matrix, its bias, a LayerNorm weight, another matrix.
    const std::vector<ParamSegment> segments{{0, 4096, true}, {4096, 64, false}, {4160, 64, false}, {4224, 8192, true}};
    const int n = 12416;
    auto params = rng.normals(n, 0.5f);
    std::vector<float> m(n, 0.f), v(n, 0.f);

    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& s : segments)
      (s.decay ? decay : no_decay)
          .push_back(to_double({params.begin() + s.offset, params.begin() + s.offset + s.numel}, {s.numel})
                         .requires_grad_(true));
    AdamWHyper hyper;
    hyper.lr = 2e-3f;
    hyper.beta1 = 0.9f;
    hyper.beta2 = 0.95f;
    hyper.eps = 1e-8f;
    hyper.weight_decay = 0.05f;
    hyper.max_grad_norm = max_norm;
    // LibTorch keeps options in double; give it exactly our float values.
    auto options = torch::optim::AdamWOptions(hyper.lr)
                       .betas({hyper.beta1, hyper.beta2})
                       .eps(hyper.eps)
                       .weight_decay(hyper.weight_decay);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options));
    groups.emplace_back(
        no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options).weight_decay(0.0)));
    torch::optim::AdamW reference(std::move(groups), options);

    for (int step = 1; step <= 4; ++step) {
      CAPTURE(step);
      auto grads = rng.normals(n, 0.02f);
      std::vector<float> norm_sq(1);
      be->grad_norm_squared(view(norm_sq, {1}), view(grads, {n}));
      hyper.step = step;
      be->adamw(view(params, {n}), view(grads, {n}), view(m, {n}), view(v, {n}), segments, hyper, view(norm_sq, {1}));

      std::size_t di = 0, ni = 0;
      std::vector<torch::Tensor> all;
      for (const auto& s : segments) {
        auto& p = s.decay ? decay[di++] : no_decay[ni++];
        p.mutable_grad() = to_double({grads.begin() + s.offset, grads.begin() + s.offset + s.numel}, {s.numel});
        all.push_back(p);
      }
      const double total_norm = torch::nn::utils::clip_grad_norm_(all, max_norm > 0 ? max_norm : 1e30);
      CHECK(norm_sq[0] == Approx(total_norm * total_norm).epsilon(1e-6));
      reference.step();
      // Segments are contiguous and in order: concatenated, they are the flat buffer.
      std::vector<torch::Tensor> exp_avg, exp_avg_sq;
      for (const auto& p : all) {
        const auto& state = static_cast<const torch::optim::AdamWParamState&>(
            *reference.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
        exp_avg.push_back(state.exp_avg());
        exp_avg_sq.push_back(state.exp_avg_sq());
      }
      CHECK(error_vs(params, torch::cat(all)) < kTolerance);
      CHECK(error_vs(m, torch::cat(exp_avg)) < kTolerance);
      CHECK(error_vs(v, torch::cat(exp_avg_sq)) < kTolerance);
      // The no-decay segments on their own (small next to the matrices).
      std::vector<float> bias(params.begin() + 4096, params.begin() + 4224);
      CHECK(error_vs(bias, torch::cat({no_decay[0], no_decay[1]})) < kTolerance);
    }
  }
}

}  // namespace vitscale::test
