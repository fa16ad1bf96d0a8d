// randaugment.h — RandAugment (Cubuk et al. 2019) on uint8 (C, H, W) images.
//
// Follows torchvision.transforms.RandAugment's op list and magnitude scale:
// N ops drawn uniformly with replacement from the 14 below, each at magnitude
// bin M of 31 (M in [0, 30]); signed ops flip sign with probability 1/2.
//   identity
//   shear_x, shear_y   shear s = 0.3 * M/30 about the top-left corner
//   translate_x, _y    t = int(150/331 * W (or H) * M/30) pixels
//   rotate             30 * M/30 degrees about the image centre, counter-clockwise
//   brightness         blend with black,      factor 1 + 0.9 * M/30 (signed)
//   color              blend with grayscale,  same factor (no-op on 1 channel)
//   contrast           blend with the grayscale mean, same factor
//   sharpness          blend with the 3x3 [1 1 1; 1 5 1; 1 1 1]/13 smoothed
//                      image (border pixels kept), same factor
//   posterize          keep 8 - round(M / 7.5) high bits
//   solarize           invert pixels >= 255 * (1 - M/30)
//   autocontrast       stretch each channel's [min, max] to [0, 255]
//   equalize           per-channel histogram equalisation (PIL's lookup table)
// Geometric ops sample the nearest source pixel (pixel centres) and fill 0
// outside. Blends compute in fp32 and round to nearest with clamping to
// [0, 255] (torchvision truncates; we round, so values can differ by 1).
// Grayscale is 0.2989 R + 0.587 G + 0.114 B. This is RandAugment-style, not a
// bit-exact copy of torchvision.
#pragma once

#include <cstdint>
#include <vector>

#include "data/rng.h"

namespace vitscale::data {

// Per-thread working memory, grown on first use and reused (no allocation per image).
struct AugmentScratch {
  std::vector<std::uint8_t> bytes;  // a copy of the image being remapped / filtered
  std::vector<float> floats;        // a grayscale plane
};

enum class RandAugmentOp : std::uint8_t {
  identity, shear_x, shear_y, translate_x, translate_y, rotate, brightness, color,
  contrast, sharpness, posterize, solarize, autocontrast, equalize
};
constexpr int kRandAugmentOpCount = 14;
constexpr int kRandAugmentBins = 31;
const char* rand_augment_op_name(RandAugmentOp op);

// Applies one op in place with magnitude bin `magnitude` (0..30) and the sign
// given (+1 / -1; ignored by unsigned ops). scratch: grown as needed.
void apply_rand_augment_op(RandAugmentOp op, int magnitude, int sign, std::uint8_t* image, int channels, int height,
                           int width, AugmentScratch& scratch);  // image: (C, H, W) uint8

// Draws `num_ops` ops (and signs) from rng and applies them in place.
void rand_augment(std::uint8_t* image, int channels, int height, int width, int num_ops, int magnitude, Rng& rng,
                  AugmentScratch& scratch);  // image: (C, H, W) uint8

}  // namespace vitscale::data
