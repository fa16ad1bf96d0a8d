// CPU backend ops against LibTorch autograd in float64: linear, GELU,
// LayerNorm (plain and fused with the residual add), residual add, token
// embedding, pooling, patch extraction and bilinear resize. Forward and
// backward, fresh random inputs, token counts 50 and 65; bar: ‖ours − ref‖/‖ref‖
// ≤ 1e-5.
#include "tests/torch/torch_test_util.h"

namespace vitscale::test {
namespace {
constexpr double kTolerance = 1e-5;
}

TEST_CASE("torch parity: linear forward and backward", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, T, K, N] : {std::tuple{4, 50, 64, 192}, std::tuple{3, 65, 96, 96}, std::tuple{2, 65, 128, 10}}) {
    CAPTURE(B, T, K, N);
    const int M = B * T;
    auto x = rng.normals(M * K), w = rng.normals(N * K, 0.1f), b = rng.normals(N), d_y = rng.normals(M * N);
    std::vector<float> y(M * N), d_x(M * K), d_w(N * K, 0.f), d_b(N, 0.f);
    be->linear(view(y, {M, N}), view(x, {M, K}), view(w, {N, K}), view(b, {N}));
    be->linear_backward(view(d_x, {M, K}), view(d_w, {N, K}), view(d_b, {N}), view(d_y, {M, N}), view(x, {M, K}),
                        view(w, {N, K}));

    auto tx = to_double(x, {M, K}, true), tw = to_double(w, {N, K}, true), tb = to_double(b, {N}, true);
    auto ty = torch::nn::functional::linear(tx, tw, tb);
    weighted_sum(ty, d_y).backward();
    CHECK(error_vs(y, ty) < kTolerance);
    CHECK(error_vs(d_x, tx.grad()) < kTolerance);
    CHECK(error_vs(d_w, tw.grad()) < kTolerance);
    CHECK(error_vs(d_b, tb.grad()) < kTolerance);
  }
}

TEST_CASE("torch parity: linear_gelu and gelu_backward (exact erf GELU)", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [M, K, N] : {std::tuple{4 * 50, 64, 256}, std::tuple{3 * 65, 48, 192}}) {
    CAPTURE(M, K, N);
    auto x = rng.normals(M * K), w = rng.normals(N * K, 0.3f), b = rng.normals(N), d_out = rng.normals(M * N);
    std::vector<float> pre(M * N), out(M * N), d_pre(M * N);
    be->linear_gelu(view(pre, {M, N}), view(out, {M, N}), view(x, {M, K}), view(w, {N, K}), view(b, {N}));
    be->gelu_backward(view(d_pre, {M, N}), view(d_out, {M, N}), view(pre, {M, N}));

    auto tx = to_double(x, {M, K}), tw = to_double(w, {N, K}), tb = to_double(b, {N});
    auto tpre = torch::nn::functional::linear(tx, tw, tb).requires_grad_(true);
    auto tout = torch::gelu(tpre);  // approximate = "none": the erf form
    weighted_sum(tout, d_out).backward();
    CHECK(error_vs(pre, tpre) < kTolerance);
    CHECK(error_vs(out, tout) < kTolerance);
    CHECK(error_vs(d_pre, tpre.grad()) < kTolerance);
  }
}

TEST_CASE("torch parity: layernorm, add_layernorm and layernorm_backward", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [R, D] : {std::pair{4 * 50, 128}, std::pair{3 * 65, 192}, std::pair{7, 64}}) {
    CAPTURE(R, D);
    auto a = rng.normals(R * D, 2.f), b = rng.normals(R * D), gamma = rng.normals(D), beta = rng.normals(D);
    for (auto& v : a) v += 1.5f;
    auto d_out = rng.normals(R * D);
    std::vector<float> sum(R * D), out(R * D), mean(R), rstd(R);
    be->add_layernorm(view(sum, {R, D}), view(out, {R, D}), view(mean, {R}), view(rstd, {R}), view(a, {R, D}),
                      view(b, {R, D}), view(gamma, {D}), view(beta, {D}));
    // d_in accumulates: start from a known gradient and subtract it after.
    auto d_in = rng.normals(R * D);
    const auto d_in_before = d_in;
    std::vector<float> d_gamma(D, 0.f), d_beta(D, 0.f);
    be->layernorm_backward(view(d_in, {R, D}), view(d_gamma, {D}), view(d_beta, {D}), view(d_out, {R, D}),
                           view(sum, {R, D}), view(mean, {R}), view(rstd, {R}), view(gamma, {D}));
    std::vector<float> d_in_only(R * D);
    for (int i = 0; i < R * D; ++i) d_in_only[i] = d_in[i] - d_in_before[i];

    auto ta = to_double(a, {R, D}), tb = to_double(b, {R, D});
    auto tsum = (ta + tb).requires_grad_(true);
    auto tg = to_double(gamma, {D}, true), tbeta = to_double(beta, {D}, true);
    auto tout = torch::layer_norm(tsum, {D}, tg, tbeta, 1e-6);
    weighted_sum(tout, d_out).backward();
    const auto tmean = tsum.detach().mean(-1);
    const auto trstd = 1.0 / torch::sqrt(tsum.detach().var(-1, /*unbiased=*/false) + 1e-6);
    CHECK(error_vs(sum, tsum) < kTolerance);
    CHECK(error_vs(out, tout) < kTolerance);
    CHECK(error_vs(mean, tmean) < kTolerance);
    CHECK(error_vs(rstd, trstd) < kTolerance);
    CHECK(error_vs(d_in_only, tsum.grad()) < kTolerance);
    CHECK(error_vs(d_gamma, tg.grad()) < kTolerance);
    CHECK(error_vs(d_beta, tbeta.grad()) < kTolerance);

    // The plain layernorm on the same sum gives the same output.
    std::vector<float> out2(R * D), mean2(R), rstd2(R);
    be->layernorm(view(out2, {R, D}), view(mean2, {R}), view(rstd2, {R}), view(sum, {R, D}), view(gamma, {D}),
                  view(beta, {D}));
    CHECK(error_vs(out2, tout) < kTolerance);
  }
}

TEST_CASE("torch parity: residual add", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  const int B = 3, T = 65, D = 96;
  auto a = rng.normals(B * T * D), b = rng.normals(B * T * D);
  std::vector<float> out(B * T * D);
  be->add(view(out, {B, T, D}), view(a, {B, T, D}), view(b, {B, T, D}));
  CHECK(error_vs(out, to_double(a, {B, T, D}) + to_double(b, {B, T, D})) < kTolerance);
}

TEST_CASE("torch parity: class token + position embedding, forward and backward", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, Np, D, with_cls] :
       {std::tuple{4, 49, 64, true}, std::tuple{3, 64, 48, true}, std::tuple{2, 49, 32, false}}) {
    CAPTURE(B, Np, D, with_cls);
    const int T = Np + (with_cls ? 1 : 0);
    auto pe = rng.normals(B * Np * D), cls = rng.normals(D), pos = rng.normals(T * D),
         d_tokens = rng.normals(B * T * D);
    std::vector<float> tokens(B * T * D), d_pe(B * Np * D), d_cls(D, 0.f), d_pos(T * D, 0.f);
    be->embed_tokens(view(tokens, {B, T, D}), view(pe, {B, Np, D}), with_cls ? view(cls, {D}) : TensorView{},
                     view(pos, {T, D}));
    be->embed_tokens_backward(view(d_pe, {B, Np, D}), with_cls ? view(d_cls, {D}) : TensorView{}, view(d_pos, {T, D}),
                              view(d_tokens, {B, T, D}));

    auto tpe = to_double(pe, {B, Np, D}, true), tcls = to_double(cls, {1, 1, D}, true),
         tpos = to_double(pos, {1, T, D}, true);
    auto x = with_cls ? torch::cat({tcls.expand({B, 1, D}), tpe}, 1) : tpe;
    auto ttokens = x + tpos;
    weighted_sum(ttokens, d_tokens).backward();
    CHECK(error_vs(tokens, ttokens) < kTolerance);
    CHECK(error_vs(d_pe, tpe.grad()) < kTolerance);
    CHECK(error_vs(d_pos, tpos.grad()) < kTolerance);
    if (with_cls) CHECK(error_vs(d_cls, tcls.grad()) < kTolerance);
  }
}

TEST_CASE("torch parity: class-token and mean pooling, forward and backward", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const int T : {50, 65}) {
    for (const Pooling mode : {Pooling::cls_token, Pooling::mean}) {
      CAPTURE(T, mode == Pooling::mean);
      const int B = 5, D = 96;
      auto x = rng.normals(B * T * D), d_pooled = rng.normals(B * D);
      std::vector<float> pooled(B * D), d_x(B * T * D);
      be->pool(view(pooled, {B, D}), view(x, {B, T, D}), mode);
      be->pool_backward(view(d_x, {B, T, D}), view(d_pooled, {B, D}), mode);
      auto tx = to_double(x, {B, T, D}, true);
      auto tpooled = mode == Pooling::cls_token ? tx.select(1, 0) : tx.mean(1);
      weighted_sum(tpooled, d_pooled).backward();
      CHECK(error_vs(pooled, tpooled) < kTolerance);
      CHECK(error_vs(d_x, tx.grad()) < kTolerance);
    }
  }
}

TEST_CASE("torch parity: image_to_patches = normalise, interpolate(bilinear), unfold", "[torch][op]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  // (C, S, I, P): no resize, down, up, and an odd source size.
  for (auto [C, S, I, P] :
       {std::tuple{3, 32, 32, 4}, std::tuple{3, 32, 28, 4}, std::tuple{1, 28, 32, 8}, std::tuple{3, 17, 24, 6}}) {
    CAPTURE(C, S, I, P);
    const int B = 3, G = I / P;
    std::vector<std::uint8_t> images(static_cast<std::size_t>(B) * C * S * S);
    for (auto& p : images) p = static_cast<std::uint8_t>(rng.integer(0, 255));
    ImageNorm norm{C, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
    std::vector<float> patches(static_cast<std::size_t>(B) * G * G * C * P * P);
    be->image_to_patches(view(patches, {B, G * G, C * P * P}), TensorView(images.data(), DType::u8, {B, C, S, S}), norm,
                         P, I);

    auto pixels = torch::from_blob(images.data(), {B, C, S, S}, torch::kUInt8).to(torch::kFloat64) / 255.0;
    if (S != I) {
      namespace F = torch::nn::functional;
      pixels = F::interpolate(pixels, F::InterpolateFuncOptions()
                                          .size(std::vector<std::int64_t>{I, I})
                                          .mode(torch::kBilinear)
                                          .align_corners(false));
    }
    auto mean = torch::tensor(std::vector<double>(norm.mean, norm.mean + C), torch::kFloat64).view({1, C, 1, 1});
    auto sd = torch::tensor(std::vector<double>(norm.std, norm.std + C), torch::kFloat64).view({1, C, 1, 1});
    auto normalised = (pixels - mean) / sd;
    // unfold gives (B, C·P·P, L) in conv-weight order (c, py, px), patches row-major.
    namespace F = torch::nn::functional;
    auto ref = F::unfold(normalised, F::UnfoldFuncOptions({P, P}).stride({P, P})).transpose(1, 2);
    CHECK(error_vs(patches, ref) < kTolerance);
  }
}

}  // namespace vitscale::test
