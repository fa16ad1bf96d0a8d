// test_randaugment.cpp — the RandAugment ops' defining properties on small uint8 images.
#include <catch2/catch.hpp>

#include <algorithm>

#include "data/randaugment.h"

using namespace vitscale::data;

namespace {

std::vector<std::uint8_t> test_image(int C, int H, int W) {
  std::vector<std::uint8_t> img(static_cast<std::size_t>(C) * H * W);  // (C, H, W)
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        img[static_cast<std::size_t>((c * H + y) * W + x)] = static_cast<std::uint8_t>(40 + 2 * x + 2 * y + 20 * c);
  return img;
}

}  // namespace

TEST_CASE("randaugment ops at magnitude 0 leave the image alone", "[randaugment]") {
  const int C = 3, H = 16, W = 16;
  const auto src = test_image(C, H, W);  // values in [40, 204]: no 255, so solarize(255) is a no-op too
  AugmentScratch scratch;
  for (auto op : {RandAugmentOp::identity, RandAugmentOp::shear_x, RandAugmentOp::shear_y, RandAugmentOp::translate_x,
                  RandAugmentOp::translate_y, RandAugmentOp::rotate, RandAugmentOp::brightness, RandAugmentOp::color,
                  RandAugmentOp::contrast, RandAugmentOp::sharpness, RandAugmentOp::posterize,
                  RandAugmentOp::solarize})
    for (int sign : {1, -1}) {
      INFO(rand_augment_op_name(op) << " sign " << sign);
      auto img = src;
      apply_rand_augment_op(op, 0, sign, img.data(), C, H, W, scratch);
      CHECK(img == src);
    }
}

TEST_CASE("randaugment ops do what their names say", "[randaugment]") {
  const int C = 3, H = 32, W = 32;
  const auto src = test_image(C, H, W);
  AugmentScratch scratch;
  auto at = [&](const std::vector<std::uint8_t>& img, int c, int y, int x) {
    return img[static_cast<std::size_t>((c * H + y) * W + x)];
  };

  auto img = src;  // translate_x by +int(150/331 * 32) = +14 columns, zero fill
  apply_rand_augment_op(RandAugmentOp::translate_x, 30, 1, img.data(), C, H, W, scratch);
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) REQUIRE(at(img, c, y, x) == (x >= 14 ? at(src, c, y, x - 14) : 0));

  img = src;  // solarize at the top magnitude inverts everything
  apply_rand_augment_op(RandAugmentOp::solarize, 30, 1, img.data(), C, H, W, scratch);
  for (std::size_t i = 0; i < img.size(); ++i) REQUIRE(img[i] == 255 - src[i]);

  img = src;  // posterize at 30 keeps 4 bits
  apply_rand_augment_op(RandAugmentOp::posterize, 30, 1, img.data(), C, H, W, scratch);
  for (std::size_t i = 0; i < img.size(); ++i) REQUIRE(img[i] == (src[i] & 0xf0));

  img = src;  // autocontrast stretches every channel to [0, 255]
  apply_rand_augment_op(RandAugmentOp::autocontrast, 9, 1, img.data(), C, H, W, scratch);
  for (int c = 0; c < C; ++c) {
    const auto begin = img.begin() + c * H * W, end = begin + H * W;
    CHECK(*std::min_element(begin, end) == 0);
    CHECK(*std::max_element(begin, end) == 255);
  }

  img = src;  // brightness -0.9 at M=30: factor 0.1
  apply_rand_augment_op(RandAugmentOp::brightness, 30, -1, img.data(), C, H, W, scratch);
  for (std::size_t i = 0; i < img.size(); ++i) REQUIRE(std::abs(img[i] - 0.1 * src[i]) <= 0.5 + 1e-3);

  img = src;  // rotation keeps the centre pixel's neighbourhood and blanks corners
  apply_rand_augment_op(RandAugmentOp::rotate, 30, 1, img.data(), C, H, W, scratch);
  CHECK(at(img, 0, 0, 0) == 0);
  CHECK(at(img, 0, H - 1, W - 1) == 0);
  CHECK(img != src);

  img = src;  // equalize spreads a narrow histogram over the full range
  apply_rand_augment_op(RandAugmentOp::equalize, 0, 1, img.data(), C, H, W, scratch);
  CHECK(*std::max_element(img.begin(), img.begin() + H * W) >= 240);
  CHECK(*std::min_element(img.begin(), img.begin() + H * W) <= 10);
}

TEST_CASE("rand_augment is seeded and works on one channel", "[randaugment]") {
  AugmentScratch scratch;
  for (int C : {1, 3}) {
    const auto src = test_image(C, 28, 28);
    for (std::uint64_t key = 0; key < 200; ++key) {
      auto a = src, b = src;
      Rng ra(key), rb(key);
      rand_augment(a.data(), C, 28, 28, 2, 9, ra, scratch);
      rand_augment(b.data(), C, 28, 28, 2, 9, rb, scratch);
      REQUIRE(a == b);
    }
  }
  auto img = test_image(3, 8, 8);
  CHECK_THROWS_AS(apply_rand_augment_op(RandAugmentOp::rotate, 31, 1, img.data(), 3, 8, 8, scratch),
                  std::invalid_argument);
}
