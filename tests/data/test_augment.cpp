// test_augment.cpp — crop/flip geometry, seeded determinism, mixup/cutmix images and targets.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <set>

#include "data/augment.h"
#include "data/rng.h"

using namespace vitscale::data;

namespace {

std::vector<std::uint8_t> ramp_image(int C, int H, int W) {
  std::vector<std::uint8_t> img(static_cast<std::size_t>(C) * H * W);  // (C, H, W)
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<std::uint8_t>(1 + (i * 37) % 251);
  return img;
}

// The definition, pixel by pixel: pad with zeros, take the window, flip it.
std::uint8_t reference_crop_flip(const std::vector<std::uint8_t>& src, int H, int W, int p, CropFlip g, int c, int y,
                                 int x) {
  const int col = g.flip ? W - 1 - x : x;
  const int sy = y + g.dy - p, sx = col + g.dx - p;
  if (sy < 0 || sy >= H || sx < 0 || sx >= W) return 0;
  return src[static_cast<std::size_t>((c * H + sy) * W + sx)];
}

}  // namespace

TEST_CASE("crop_flip matches the padded-window definition for every offset", "[augment]") {
  const int C = 3, H = 6, W = 7;
  for (int p : {0, 1, 2, 4}) {
    const auto src = ramp_image(C, H, W);
    std::vector<std::uint8_t> dst(src.size());
    for (int dy = 0; dy <= 2 * p; ++dy)
      for (int dx = 0; dx <= 2 * p; ++dx)
        for (bool flip : {false, true}) {
          const CropFlip g{dy, dx, flip};
          crop_flip(src.data(), C, H, W, p, g, dst.data());
          for (int c = 0; c < C; ++c)
            for (int y = 0; y < H; ++y)
              for (int x = 0; x < W; ++x)
                REQUIRE(dst[static_cast<std::size_t>((c * H + y) * W + x)] ==
                        reference_crop_flip(src, H, W, p, g, c, y, x));
        }
  }
  // The centred window without flip is the image itself; with flip, its mirror.
  const auto src = ramp_image(1, 4, 4);
  std::vector<std::uint8_t> dst(16);
  crop_flip(src.data(), 1, 4, 4, 4, {4, 4, false}, dst.data());
  CHECK(dst == src);
  crop_flip(src.data(), 1, 4, 4, 4, {4, 4, true}, dst.data());
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(dst[static_cast<std::size_t>(y * 4 + x)] == src[static_cast<std::size_t>(y * 4 + 3 - x)]);
}

TEST_CASE("augment_sample is a pure function of the key and draws crop then flip", "[augment]") {
  const int C = 3, H = 32, W = 32;
  const auto src = ramp_image(C, H, W);
  AugmentConfig config;
  config.crop_padding = 4;
  config.horizontal_flip = true;
  std::vector<std::uint8_t> a(src.size()), b(src.size()), expect(src.size());
  AugmentScratch scratch;
  std::set<std::tuple<int, int, bool>> seen;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const std::uint64_t key = derive_key(1234, RngStream::sample, 0, i);
    augment_sample(src.data(), C, H, W, config, key, a.data(), scratch);
    augment_sample(src.data(), C, H, W, config, key, b.data(), scratch);
    REQUIRE(a == b);
    Rng rng(key);  // the documented draw order: dy, dx, flip
    CropFlip g;
    g.dy = static_cast<int>(rng.below(9));
    g.dx = static_cast<int>(rng.below(9));
    g.flip = rng.coin(0.5f);
    crop_flip(src.data(), C, H, W, 4, g, expect.data());
    REQUIRE(a == expect);
    seen.insert({g.dy, g.dx, g.flip});
  }
  CHECK(seen.size() == 9 * 9 * 2);  // every offset and both flips occur
}

TEST_CASE("mixup and cutmix soft targets sum to 1, with label smoothing as torch defines it", "[augment]") {
  const int B = 9, K = 10;
  const std::vector<std::int32_t> labels = {0, 1, 2, 3, 4, 5, 6, 7, 3};
  std::vector<float> targets(static_cast<std::size_t>(B) * K);

  SECTION("no mixing: (1 - eps) * onehot + eps / K") {
    fill_soft_targets(labels.data(), B, K, MixDecision{}, 0.1f, targets.data());
    for (int i = 0; i < B; ++i)
      for (int k = 0; k < K; ++k)
        CHECK(targets[static_cast<std::size_t>(i * K + k)] ==
              Approx(k == labels[static_cast<std::size_t>(i)] ? 0.9f + 0.01f : 0.01f));
  }
  SECTION("mixed batches over many keys") {
    AugmentConfig config;
    config.mixup_alpha = 0.8f;
    config.cutmix_alpha = 1.0f;
    config.label_smoothing = 0.1f;
    int kinds[3] = {0, 0, 0};
    for (std::uint64_t key = 0; key < 500; ++key) {
      const MixDecision mix = draw_mix(config, key, 32, 32);
      ++kinds[static_cast<int>(mix.kind)];
      REQUIRE(mix.lambda >= 0.f);
      REQUIRE(mix.lambda <= 1.f);
      fill_soft_targets(labels.data(), B, K, mix, config.label_smoothing, targets.data());
      for (int i = 0; i < B; ++i) {
        const float sum = std::accumulate(targets.begin() + i * K, targets.begin() + (i + 1) * K, 0.f);
        REQUIRE(sum == Approx(1.f).margin(1e-6));
        const int j = B - 1 - i;
        if (j != i && labels[static_cast<std::size_t>(i)] != labels[static_cast<std::size_t>(j)]) {
          CHECK(targets[static_cast<std::size_t>(i * K + labels[static_cast<std::size_t>(i)])] ==
                Approx(mix.lambda * 0.9f + 0.01f).margin(1e-6));
          CHECK(dominant_label(labels.data(), B, i, mix) ==
                (mix.lambda >= 0.5f ? labels[static_cast<std::size_t>(i)] : labels[static_cast<std::size_t>(j)]));
        }
      }
      REQUIRE(draw_mix(config, key, 32, 32).lambda == mix.lambda);  // seeded
    }
    CHECK(kinds[0] == 0);  // mix_prob 1
    CHECK(kinds[1] > 150);
    CHECK(kinds[2] > 150);
    config.mix_prob = 0.f;
    CHECK(draw_mix(config, 3, 32, 32).kind == MixKind::none);
  }
}

TEST_CASE("cutmix copies the box from the partner exactly and reports its area as lambda", "[augment]") {
  const int B = 4, C = 3, H = 32, W = 32;
  const std::size_t image_bytes = static_cast<std::size_t>(C) * H * W;
  std::vector<std::uint8_t> original(B * image_bytes);
  for (std::size_t i = 0; i < original.size(); ++i) original[i] = static_cast<std::uint8_t>((i * 7919) % 256);
  AugmentConfig config;
  config.cutmix_alpha = 1.f;
  for (std::uint64_t key = 0; key < 50; ++key) {
    const MixDecision mix = draw_mix(config, key, H, W);
    REQUIRE(mix.kind == MixKind::cutmix);
    const double area = static_cast<double>(mix.box_y1 - mix.box_y0) * (mix.box_x1 - mix.box_x0);
    CHECK(mix.lambda == Approx(1.0 - area / (H * W)));
    auto images = original;
    apply_mix(images.data(), B, C, H, W, mix);
    for (int i = 0; i < B; ++i)
      for (int c = 0; c < C; ++c)
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x) {
            const bool in_box = y >= mix.box_y0 && y < mix.box_y1 && x >= mix.box_x0 && x < mix.box_x1;
            const int from = in_box ? B - 1 - i : i;
            const std::size_t at = static_cast<std::size_t>((c * H + y) * W + x);
            REQUIRE(images[i * image_bytes + at] == original[from * image_bytes + at]);
          }
  }
}

TEST_CASE("mixup blends in uint8 within half a level of the exact blend", "[augment]") {
  const int B = 5, C = 1, H = 8, W = 8;
  const std::size_t image_bytes = static_cast<std::size_t>(C) * H * W;
  std::vector<std::uint8_t> original(B * image_bytes);
  for (std::size_t i = 0; i < original.size(); ++i) original[i] = static_cast<std::uint8_t>((i * 104729) % 256);
  MixDecision mix;
  mix.kind = MixKind::mixup;
  mix.lambda = 0.3f;
  auto images = original;
  apply_mix(images.data(), B, C, H, W, mix);
  for (int i = 0; i < B; ++i)
    for (std::size_t k = 0; k < image_bytes; ++k) {
      const int j = B - 1 - i;
      const double exact = i == j ? original[i * image_bytes + k]
                                  : 0.3 * original[i * image_bytes + k] + 0.7 * original[j * image_bytes + k];
      REQUIRE(std::abs(images[i * image_bytes + k] - exact) <= 0.5 + 1e-4);
    }
}

TEST_CASE("augmentation config is checked", "[augment]") {
  AugmentConfig config;
  config.crop_padding = 40;
  CHECK_THROWS_AS(check_augment_config(config, 32, 32), std::invalid_argument);
  config.crop_padding = 4;
  config.label_smoothing = 1.f;
  CHECK_THROWS_AS(check_augment_config(config, 32, 32), std::invalid_argument);
  config.label_smoothing = 0.1f;
  config.randaugment_magnitude = 31;
  CHECK_THROWS_AS(check_augment_config(config, 32, 32), std::invalid_argument);
  config.randaugment_magnitude = 9;
  CHECK_NOTHROW(check_augment_config(config, 32, 32));
}
