// test_image_ops.cpp — normalisation and the bilinear-resize reference (PyTorch's
// align_corners=False semantics) on cases whose answers are known by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "data/image_ops.h"

using namespace vitscale::data;

TEST_CASE("normalize_image computes (x / 255 - mean) / std per channel", "[image_ops]") {
  const Normalization norm = cifar10_normalization();
  const std::vector<std::uint8_t> img = {0, 255, 128, 10, 20, 30};  // (3, 1, 2)
  std::vector<float> out(6);
  normalize_image(img.data(), 3, 1, 2, norm, out.data());
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 2; ++i)
      CHECK(out[static_cast<std::size_t>(c * 2 + i)] ==
            (img[static_cast<std::size_t>(c * 2 + i)] / 255.f - norm.mean[c]) / norm.std[c]);
  CHECK(out[0] == Approx(-0.4914f / 0.2470f));
  CHECK_THROWS_AS(normalize_image(img.data(), 1, 1, 6, norm, out.data()), std::invalid_argument);
}

TEST_CASE("bilinear taps follow half-pixel centres clamped at the border", "[image_ops]") {
  // 2 -> 4: sources max(0.5 * (d + 0.5) - 0.5, 0) = 0, 0.25, 0.75, 1.25 (clamped to the last pixel).
  const auto taps = bilinear_taps(2, 4);
  CHECK(taps[0].i0 == 0);
  CHECK(taps[0].w1 == 0.f);
  CHECK(taps[1].i0 == 0);
  CHECK(taps[1].i1 == 1);
  CHECK(taps[1].w1 == 0.25f);
  CHECK(taps[2].w1 == 0.75f);
  CHECK(taps[3].i0 == 1);
  CHECK(taps[3].i1 == 1);
  // 1-D [0, 100] upsampled to 4: PyTorch gives [0, 25, 75, 100].
  const std::vector<std::uint8_t> row = {0, 100};
  std::vector<float> out(4);
  resize_bilinear_u8_to_float(row.data(), 1, 1, 2, 1, 4, out.data());
  CHECK(out == std::vector<float>{0.f, 25.f, 75.f, 100.f});
}

TEST_CASE("bilinear resize: a hand-computed 2x2 -> 4x4 value, 2x downsampling averages", "[image_ops]") {
  const std::vector<std::uint8_t> img = {0, 100, 200, 40};  // (1, 2, 2)
  std::vector<float> out(16);
  resize_bilinear_u8_to_float(img.data(), 1, 2, 2, 4, 4, out.data());
  // out[1][2]: rows (0, 1, w1 0.25), cols (0, 1, w1 0.75): 0.75 * 75 + 0.25 * 80.
  CHECK(out[1 * 4 + 2] == Approx(76.25f));
  CHECK(out[0] == 0.f);
  CHECK(out[15] == 40.f);
  // 4 -> 2 with align_corners=False samples at 0.5 and 2.5: the mean of each 2x2 block.
  std::vector<std::uint8_t> big(16);
  for (int i = 0; i < 16; ++i) big[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i * 13);
  std::vector<float> small(4);
  resize_bilinear_u8_to_float(big.data(), 1, 4, 4, 2, 2, small.data());
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      const float mean = (big[static_cast<std::size_t>(8 * y + 2 * x)] + big[static_cast<std::size_t>(8 * y + 2 * x + 1)] +
                          big[static_cast<std::size_t>(8 * y + 2 * x + 4)] + big[static_cast<std::size_t>(8 * y + 2 * x + 5)]) /
                         4.f;
      CHECK(small[static_cast<std::size_t>(2 * y + x)] == Approx(mean));
    }
}

TEST_CASE("bilinear resize 32 -> 224: same size is identity, constants stay, normalised variant agrees",
          "[image_ops]") {
  std::vector<std::uint8_t> img(3 * 32 * 32);
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<std::uint8_t>((i * 31) % 256);
  std::vector<float> same(img.size());
  resize_bilinear_u8_to_float(img.data(), 3, 32, 32, 32, 32, same.data());
  for (std::size_t i = 0; i < img.size(); ++i) REQUIRE(same[i] == static_cast<float>(img[i]));

  std::vector<std::uint8_t> flat(3 * 32 * 32, 77);
  std::vector<float> big(3 * 224 * 224);
  resize_bilinear_u8_to_float(flat.data(), 3, 32, 32, 224, 224, big.data());
  for (float v : big) REQUIRE(v == Approx(77.f).margin(1e-4));

  resize_bilinear_u8_to_float(img.data(), 3, 32, 32, 224, 224, big.data());
  std::vector<float> normalised(big.size());
  const Normalization norm = cifar100_normalization();
  resize_bilinear_u8_to_normalized(img.data(), 3, 32, 32, 224, 224, norm, normalised.data());
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 224 * 224; ++i) {
      const float v = big[static_cast<std::size_t>(c * 224 * 224 + i)];
      REQUIRE(v >= 0.f);
      REQUIRE(v <= 255.f);
      REQUIRE(normalised[static_cast<std::size_t>(c * 224 * 224 + i)] ==
              Approx((v / 255.f - norm.mean[c]) / norm.std[c]).margin(1e-5));
    }
}
