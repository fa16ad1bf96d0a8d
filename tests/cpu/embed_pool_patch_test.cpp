// Patch extraction (uint8 → normalised patches, bilinear resize), the float
// patchify/unpatchify pair, token embedding and pooling on the CPU backend.
#include <cmath>
#include <cstdint>

#include "kernels/cpu/patchify.h"
#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

std::vector<std::uint8_t> random_images(Rng& rng, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (auto& p : v) p = static_cast<std::uint8_t>(rng.integer(0, 255));
  return v;
}

}  // namespace

TEST_CASE("image_to_patches orders each patch (c, py, px) and normalises per channel", "[cpu][patchify]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  const int B = 3, C = 3, I = 12, P = 4, G = I / P;
  auto images = random_images(rng, B * C * I * I);
  ImageNorm norm{C, {0.4914f, 0.4822f, 0.4465f}, {0.247f, 0.243f, 0.261f}};
  std::vector<float> patches(B * G * G * C * P * P);
  be->image_to_patches(view(patches, {B, G * G, C * P * P}), TensorView(images.data(), DType::u8, {B, C, I, I}), norm,
                       P, I);
  // Conv2d(C, D, P, stride=P) semantics: patch (gy, gx), element (c, py, px).
  for (int b = 0; b < B; ++b)
    for (int gy = 0; gy < G; ++gy)
      for (int gx = 0; gx < G; ++gx)
        for (int c = 0; c < C; ++c)
          for (int py = 0; py < P; ++py)
            for (int px = 0; px < P; ++px) {
              const double pixel = images[((b * C + c) * I + gy * P + py) * I + gx * P + px];
              const double expected = (pixel / 255.0 - norm.mean[c]) / norm.std[c];
              const float got = patches[((b * G * G + gy * G + gx) * C + c) * P * P + py * P + px];
              REQUIRE(got == Approx(expected).margin(1e-6));
            }
}

TEST_CASE("image_to_patches resizes bilinearly with half-pixel centres (align_corners=False)", "[cpu][patchify]") {
  auto be = make_cpu_backend();
  const int P = 4;
  // A horizontal ramp p(x) = 8x resized from S to I samples it at
  // x_src = (x + 0.5)·S/I − 0.5, clamped to [0, S − 1]: bilinear is exact on a ramp.
  for (auto [S, I] : {std::pair{32, 28}, std::pair{20, 28}, std::pair{28, 16}}) {
    CAPTURE(S, I);
    std::vector<std::uint8_t> images(S * S);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) images[y * S + x] = static_cast<std::uint8_t>(8 * x);
    const int G = I / P;
    std::vector<float> patches(G * G * P * P);
    ImageNorm identity{1, {0.f}, {1.f}};
    be->image_to_patches(view(patches, {1, G * G, P * P}), TensorView(images.data(), DType::u8, {1, 1, S, S}), identity,
                         P, I);
    for (int y = 0; y < I; ++y)
      for (int x = 0; x < I; ++x) {
        const double src = std::clamp((x + 0.5) * S / I - 0.5, 0.0, S - 1.0);
        const float got = patches[((y / P) * G + x / P) * P * P + (y % P) * P + x % P];
        REQUIRE(got == Approx(8.0 * src / 255.0).margin(1e-6));
      }
  }
  // A constant image stays constant whatever the resize.
  std::vector<std::uint8_t> flat(2 * 3 * 17 * 17, 77);
  std::vector<float> patches(2 * 49 * 3 * 16);
  be->image_to_patches(view(patches, {2, 49, 48}), TensorView(flat.data(), DType::u8, {2, 3, 17, 17}),
                       ImageNorm{3, {0.f, 0.f, 0.f}, {1.f, 1.f, 1.f}}, 4, 28);
  for (float v : patches) REQUIRE(v == Approx(77.0 / 255.0).margin(1e-6));
}

TEST_CASE("patchify and unpatchify are inverse permutations and adjoint", "[cpu][patchify]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const cpu::PatchGeometry geom{3, 2, 12, 3};
  const auto n = static_cast<std::size_t>(geom.batch * geom.channels * geom.image_size * geom.image_size);
  auto images = rng.normals(n), other = rng.normals(n);
  std::vector<float> patches(n), back(n), patches_other(n);
  cpu::patchify(patches.data(), images.data(), geom);
  cpu::unpatchify(back.data(), patches.data(), geom);
  CHECK(back == images);
  // ⟨patchify(x), p⟩ = ⟨x, unpatchify(p)⟩: unpatchify is patchify's gradient.
  cpu::patchify(patches_other.data(), other.data(), geom);
  std::vector<float> unpatched_other(n);
  cpu::unpatchify(unpatched_other.data(), other.data(), geom);
  CHECK(dot(patches, other) == Approx(dot(images, unpatched_other)).epsilon(1e-12));
  // The float path agrees with the uint8 path on pixel values / 255.
  auto u8 = random_images(rng, n);
  std::vector<float> scaled(n), from_float(n), from_u8(n);
  for (std::size_t i = 0; i < n; ++i) scaled[i] = static_cast<float>(u8[i] / 255.0);
  cpu::patchify(from_float.data(), scaled.data(), geom);
  const float zero[2] = {0.f, 0.f}, one[2] = {1.f, 1.f};
  cpu::image_to_patches_u8(from_u8.data(), u8.data(), geom.image_size, zero, one, geom);
  CHECK(from_u8 == from_float);
}

TEST_CASE("embed_tokens prepends the class token, adds positions, and its backward is exact", "[cpu][embed]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (const bool with_cls : {true, false}) {
    CAPTURE(with_cls);
    const int B = 5, Np = 49, D = 24, T = Np + (with_cls ? 1 : 0);
    auto patch_emb = rng.normals(B * Np * D), cls = rng.normals(D), pos = rng.normals(T * D);
    std::vector<float> tokens(B * T * D);
    TensorView cls_view = with_cls ? view(cls, {D}) : TensorView{};
    be->embed_tokens(view(tokens, {B, T, D}), view(patch_emb, {B, Np, D}), cls_view, view(pos, {T, D}));
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < D; ++i) {
          const float src = (with_cls && t == 0) ? cls[i] : patch_emb[(b * Np + t - (with_cls ? 1 : 0)) * D + i];
          REQUIRE(tokens[(b * T + t) * D + i] == src + pos[t * D + i]);
        }
    // The op is linear, so finite differences are exact up to rounding.
    const auto weights = rng.normals(B * T * D);
    auto loss = [&] {
      TensorView c = with_cls ? view(cls, {D}) : TensorView{};
      be->embed_tokens(view(tokens, {B, T, D}), view(patch_emb, {B, Np, D}), c, view(pos, {T, D}));
      return dot(weights, tokens);
    };
    auto d_tokens = weights;
    std::vector<float> d_patch(B * Np * D, 5.f), d_cls(D, 0.f), d_pos(T * D, 0.f);
    be->embed_tokens_backward(view(d_patch, {B, Np, D}), with_cls ? view(d_cls, {D}) : TensorView{},
                              view(d_pos, {T, D}), view(d_tokens, {B, T, D}));
    CHECK(worst_directional_error(patch_emb, d_patch, loss, rng, 0.1f) < 2e-4);
    CHECK(worst_directional_error(pos, d_pos, loss, rng, 0.1f) < 2e-4);
    if (with_cls) CHECK(worst_directional_error(cls, d_cls, loss, rng, 0.1f) < 2e-4);
    // d_cls and d_pos accumulate, d_patch_emb is assigned.
    auto d_patch2 = rng.normals(B * Np * D), d_cls2 = rng.normals(D), d_pos2 = rng.normals(T * D);
    const auto d_cls2_before = d_cls2, d_pos2_before = d_pos2;
    be->embed_tokens_backward(view(d_patch2, {B, Np, D}), with_cls ? view(d_cls2, {D}) : TensorView{},
                              view(d_pos2, {T, D}), view(d_tokens, {B, T, D}));
    CHECK(d_patch2 == d_patch);
    for (int i = 0; i < T * D; ++i) REQUIRE(d_pos2[i] == Approx(d_pos2_before[i] + d_pos[i]).margin(1e-5));
    if (with_cls)
      for (int i = 0; i < D; ++i) REQUIRE(d_cls2[i] == Approx(d_cls2_before[i] + d_cls[i]).margin(1e-5));
  }
}

TEST_CASE("pool takes the class token or the token mean, pool_backward is its exact adjoint", "[cpu][pool]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  const int B = 4, T = 65, D = 20;
  for (const Pooling mode : {Pooling::cls_token, Pooling::mean}) {
    CAPTURE(mode == Pooling::mean);
    auto x = rng.normals(B * T * D);
    std::vector<float> pooled(B * D);
    be->pool(view(pooled, {B, D}), view(x, {B, T, D}), mode);
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < D; ++i) {
        double expected = x[b * T * D + i];
        if (mode == Pooling::mean) {
          expected = 0;
          for (int t = 0; t < T; ++t) expected += x[(b * T + t) * D + i];
          expected /= T;
        }
        REQUIRE(pooled[b * D + i] == Approx(expected).margin(1e-6));
      }
    const auto weights = rng.normals(B * D);
    auto loss = [&] {
      be->pool(view(pooled, {B, D}), view(x, {B, T, D}), mode);
      return dot(weights, pooled);
    };
    auto d_pooled = weights;
    std::vector<float> d_x(B * T * D, 3.f);  // assigned: the 3s must all go
    be->pool_backward(view(d_x, {B, T, D}), view(d_pooled, {B, D}), mode);
    CHECK(worst_directional_error(x, d_x, loss, rng, 0.1f) < 2e-4);
    if (mode == Pooling::cls_token)
      for (int b = 0; b < B; ++b)
        for (int i = D; i < T * D; ++i) REQUIRE(d_x[b * T * D + i] == 0.f);
  }
}

}  // namespace vitscale::test
