// randaugment.cpp — the 14 RandAugment ops on uint8 (C, H, W) images (semantics in randaugment.h).
#include "data/randaugment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vitscale::data {

namespace {

// floor() without a libm call (baseline x86-64 has no rounding instruction); |v| < 2^31.
int floor_to_int(float v) {
  const int t = static_cast<int>(v);
  return t - (static_cast<float>(t) > v);
}

std::uint8_t round_clamp(float v) { return static_cast<std::uint8_t>(std::clamp(v, 0.f, 255.f) + 0.5f); }

// Inverse-mapped geometric op: out(y, x) = in(src(y, x)) with nearest sampling, 0 outside.
// map(x_centre, y_centre) -> source (x, y) in continuous pixel coordinates (centres at +0.5).
template <class Map>
void remap(std::uint8_t* image, int channels, int height, int width, AugmentScratch& scratch_space, Map map) {
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  std::vector<std::uint8_t>& scratch = scratch_space.bytes;
  scratch.assign(image, image + plane * channels);  // (C, H, W) copy of the input
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      float sx = 0.f, sy = 0.f;
      map(static_cast<float>(x) + 0.5f, static_cast<float>(y) + 0.5f, sx, sy);
      const int ix = floor_to_int(sx), iy = floor_to_int(sy);
      const bool inside = ix >= 0 && ix < width && iy >= 0 && iy < height;
      for (int c = 0; c < channels; ++c)
        image[c * plane + static_cast<std::size_t>(y) * width + x] =
            inside ? scratch[c * plane + static_cast<std::size_t>(iy) * width + ix] : 0;
    }
}

// Grayscale plane (H, W) as float, 0.2989 R + 0.587 G + 0.114 B (or the single channel).
void grayscale(const std::uint8_t* image, int channels, std::size_t plane, std::vector<float>& gray) {
  gray.resize(plane);
  for (std::size_t i = 0; i < plane; ++i)
    gray[i] = channels == 3 ? 0.2989f * image[i] + 0.587f * image[plane + i] + 0.114f * image[2 * plane + i]
                            : static_cast<float>(image[i]);
}

void blend_with_plane(std::uint8_t* image, int channels, std::size_t plane, const std::vector<float>& other,
                      float factor) {
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < plane; ++i) {
      std::uint8_t& v = image[c * plane + i];
      v = round_clamp(factor * v + (1.f - factor) * other[i]);
    }
}

void sharpness(std::uint8_t* image, int channels, int height, int width, float factor,
               AugmentScratch& scratch_space) {
  if (height < 3 || width < 3) return;
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  std::vector<std::uint8_t>& scratch = scratch_space.bytes;
  scratch.assign(image, image + plane * channels);  // the original (C, H, W)
  for (int c = 0; c < channels; ++c) {
    const std::uint8_t* src = scratch.data() + c * plane;
    std::uint8_t* dst = image + c * plane;
    for (int y = 1; y < height - 1; ++y)
      for (int x = 1; x < width - 1; ++x) {
        int sum = 4 * src[y * width + x];
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) sum += src[(y + dy) * width + (x + dx)];
        const float smooth = static_cast<float>((sum + 6) / 13);  // round(sum / 13), sum >= 0
        dst[y * width + x] = round_clamp(factor * src[y * width + x] + (1.f - factor) * smooth);
      }
  }
}

void autocontrast(std::uint8_t* image, int channels, std::size_t plane) {
  for (int c = 0; c < channels; ++c) {
    std::uint8_t* p = image + c * plane;
    const auto [lo, hi] = std::minmax_element(p, p + plane);
    const int low = *lo, high = *hi;
    if (high <= low) continue;
    const float scale = 255.f / static_cast<float>(high - low);
    for (std::size_t i = 0; i < plane; ++i) p[i] = round_clamp(static_cast<float>(p[i] - low) * scale);
  }
}

// PIL's ImageOps.equalize lookup table, channel by channel.
void equalize(std::uint8_t* image, int channels, std::size_t plane) {
  for (int c = 0; c < channels; ++c) {
    std::uint8_t* p = image + c * plane;
    std::array<std::int64_t, 256> hist{};
    for (std::size_t i = 0; i < plane; ++i) ++hist[p[i]];
    int last = 255;
    while (last > 0 && hist[static_cast<std::size_t>(last)] == 0) --last;
    const std::int64_t step = (static_cast<std::int64_t>(plane) - hist[static_cast<std::size_t>(last)]) / 255;
    if (step == 0) continue;
    std::array<std::uint8_t, 256> lut{};
    std::int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(std::min<std::int64_t>(n / step, 255));
      n += hist[static_cast<std::size_t>(i)];
    }
    for (std::size_t i = 0; i < plane; ++i) p[i] = lut[p[i]];
  }
}

}  // namespace

const char* rand_augment_op_name(RandAugmentOp op) {
  static constexpr const char* kNames[kRandAugmentOpCount] = {
      "identity", "shear_x",   "shear_y",  "translate_x", "translate_y",  "rotate",   "brightness",
      "color",    "contrast",  "sharpness", "posterize",  "solarize",     "autocontrast", "equalize"};
  return kNames[static_cast<int>(op)];
}

void apply_rand_augment_op(RandAugmentOp op, int magnitude, int sign, std::uint8_t* image, int channels, int height,
                           int width, AugmentScratch& scratch) {
  if (magnitude < 0 || magnitude >= kRandAugmentBins)
    throw std::invalid_argument("rand_augment: magnitude " + std::to_string(magnitude) + " outside [0, 30]");
  const float m = static_cast<float>(magnitude) / static_cast<float>(kRandAugmentBins - 1);  // 0..1
  const float s = sign < 0 ? -1.f : 1.f;
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  const float factor = 1.f + s * 0.9f * m;  // brightness, color, contrast, sharpness
  std::vector<float>& gray = scratch.floats;
  switch (op) {
    case RandAugmentOp::identity: return;
    case RandAugmentOp::shear_x: {
      const float shear = s * 0.3f * m;
      remap(image, channels, height, width, scratch, [&](float x, float y, float& sx, float& sy) {
        sx = x + shear * y;
        sy = y;
      });
      return;
    }
    case RandAugmentOp::shear_y: {
      const float shear = s * 0.3f * m;
      remap(image, channels, height, width, scratch, [&](float x, float y, float& sx, float& sy) {
        sx = x;
        sy = y + shear * x;
      });
      return;
    }
    case RandAugmentOp::translate_x:
    case RandAugmentOp::translate_y: {
      const bool along_x = op == RandAugmentOp::translate_x;
      const float shift =
          s * static_cast<float>(static_cast<int>(150.f / 331.f * static_cast<float>(along_x ? width : height) * m));
      remap(image, channels, height, width, scratch, [&](float x, float y, float& sx, float& sy) {
        sx = along_x ? x - shift : x;
        sy = along_x ? y : y - shift;
      });
      return;
    }
    case RandAugmentOp::rotate: {
      const double radians = s * 30.0 * m * 3.14159265358979323846 / 180.0;
      const float cs = static_cast<float>(std::cos(radians)), sn = static_cast<float>(std::sin(radians));
      const float cx = 0.5f * static_cast<float>(width), cy = 0.5f * static_cast<float>(height);
      remap(image, channels, height, width, scratch, [&](float x, float y, float& sx, float& sy) {
        const float dx = x - cx, dy = y - cy;  // counter-clockwise on screen (y points down)
        sx = cx + cs * dx - sn * dy;
        sy = cy + sn * dx + cs * dy;
      });
      return;
    }
    case RandAugmentOp::brightness:
      gray.assign(plane, 0.f);
      blend_with_plane(image, channels, plane, gray, factor);
      return;
    case RandAugmentOp::color:
      if (channels != 3) return;
      grayscale(image, channels, plane, gray);
      blend_with_plane(image, channels, plane, gray, factor);
      return;
    case RandAugmentOp::contrast: {
      grayscale(image, channels, plane, gray);
      double sum = 0.0;
      for (float g : gray) sum += g;
      gray.assign(plane, static_cast<float>(sum / static_cast<double>(plane)));
      blend_with_plane(image, channels, plane, gray, factor);
      return;
    }
    case RandAugmentOp::sharpness: sharpness(image, channels, height, width, factor, scratch); return;
    case RandAugmentOp::posterize: {
      const int bits = 8 - static_cast<int>(std::lround(static_cast<double>(magnitude) / 7.5));
      const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
      for (std::size_t i = 0; i < plane * channels; ++i) image[i] &= mask;
      return;
    }
    case RandAugmentOp::solarize: {
      const float threshold = 255.f * (1.f - m);
      for (std::size_t i = 0; i < plane * channels; ++i)
        if (static_cast<float>(image[i]) >= threshold) image[i] = static_cast<std::uint8_t>(255 - image[i]);
      return;
    }
    case RandAugmentOp::autocontrast: autocontrast(image, channels, plane); return;
    case RandAugmentOp::equalize: equalize(image, channels, plane); return;
  }
}

void rand_augment(std::uint8_t* image, int channels, int height, int width, int num_ops, int magnitude, Rng& rng,
                  AugmentScratch& scratch) {
  for (int i = 0; i < num_ops; ++i) {
    const auto op = static_cast<RandAugmentOp>(rng.below(kRandAugmentOpCount));
    const int sign = rng.coin(0.5f) ? -1 : 1;
    apply_rand_augment_op(op, magnitude, sign, image, channels, height, width, scratch);
  }
}

}  // namespace vitscale::data
