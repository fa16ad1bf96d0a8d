#include "kernels/cpu/patchify.h"

#include <algorithm>
#include <cmath>

namespace vitscale::cpu {
namespace {

// Flat index into (Np, C·P·P) of pixel (c, y, x) of one image of side I.
inline std::int64_t patch_index(const PatchGeometry& g, std::int64_t c, std::int64_t y, std::int64_t x) {
  const std::int64_t P = g.patch_size;
  const std::int64_t patch = (y / P) * g.grid() + x / P;
  return patch * g.patch_dim() + (c * P + y % P) * P + x % P;
}

// Where output pixel `dst` samples an input of `in_size` pixels when resized to
// `out_size`: PyTorch's bilinear, align_corners=False.
struct Tap {
  std::int64_t lo, hi;  // the two source pixels
  double w_hi;          // weight of `hi` (lo gets 1 − w_hi)
};
inline Tap bilinear_tap(std::int64_t dst, std::int64_t in_size, std::int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double src = std::max((static_cast<double>(dst) + 0.5) * scale - 0.5, 0.0);
  const auto lo = std::min(static_cast<std::int64_t>(src), in_size - 1);
  return {lo, std::min(lo + 1, in_size - 1), src - static_cast<double>(lo)};
}

}  // namespace

void image_to_patches_u8(float* patches, const std::uint8_t* images, std::int64_t source_size, const float* mean,
                         const float* std_dev, const PatchGeometry& g) {
  const std::int64_t I = g.image_size, S = source_size, C = g.channels;
  const std::int64_t per_image = g.num_patches() * g.patch_dim();
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < g.batch; ++b) {
    float* out = patches + b * per_image;
    for (std::int64_t c = 0; c < C; ++c) {
      const std::uint8_t* plane = images + (b * C + c) * S * S;
      const double m = mean[c], inv_sd = 1.0 / static_cast<double>(std_dev[c]);
      for (std::int64_t y = 0; y < I; ++y) {
        const Tap ty = bilinear_tap(y, S, I);
        for (std::int64_t x = 0; x < I; ++x) {
          double pixel;
          if (S == I) {
            pixel = plane[y * S + x];
          } else {
            const Tap tx = bilinear_tap(x, S, I);
            const auto at = [&](std::int64_t yy, std::int64_t xx) { return static_cast<double>(plane[yy * S + xx]); };
            const double top = (1.0 - tx.w_hi) * at(ty.lo, tx.lo) + tx.w_hi * at(ty.lo, tx.hi);
            const double bottom = (1.0 - tx.w_hi) * at(ty.hi, tx.lo) + tx.w_hi * at(ty.hi, tx.hi);
            pixel = (1.0 - ty.w_hi) * top + ty.w_hi * bottom;
          }
          out[patch_index(g, c, y, x)] = static_cast<float>((pixel / 255.0 - m) * inv_sd);
        }
      }
    }
  }
}

void patchify(float* patches, const float* images, const PatchGeometry& g) {
  const std::int64_t I = g.image_size, C = g.channels;
  const std::int64_t per_image = g.num_patches() * g.patch_dim();
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < g.batch; ++b) {
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < I; ++y)
        for (std::int64_t x = 0; x < I; ++x)
          patches[b * per_image + patch_index(g, c, y, x)] = images[((b * C + c) * I + y) * I + x];
  }
}

void unpatchify(float* images, const float* patches, const PatchGeometry& g) {
  const std::int64_t I = g.image_size, C = g.channels;
  const std::int64_t per_image = g.num_patches() * g.patch_dim();
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < g.batch; ++b) {
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < I; ++y)
        for (std::int64_t x = 0; x < I; ++x)
          images[((b * C + c) * I + y) * I + x] = patches[b * per_image + patch_index(g, c, y, x)];
  }
}

}  // namespace vitscale::cpu
