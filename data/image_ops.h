// image_ops.h — the CPU reference for what happens to a uint8 batch after the loader:
// normalisation to float, and bilinear resizing (CIFAR 32x32 -> 224x224 for ViT-B/16).
//
// The loader hands the model uint8 images (B, C, H, W) at the dataset's native
// size; only those bytes cross to the GPU. The model's first op (patchify) turns
// them into normalised floats, optionally resizing on the way. These functions
// are that op's oracle, so their semantics are spelled out exactly:
//
// normalize:  y = (float(x) / 255.f - mean[c]) / std[c]     (fp32, in that order)
//
// bilinear resize (PyTorch's F.interpolate(mode='bilinear', align_corners=False,
// antialias=False) on a float tensor holding the uint8 values; no scale_factor):
//   scale   = float(in_size) / float(out_size)
//   src     = max(scale * (dst + 0.5) - 0.5, 0)      (half-pixel centres, clamped at 0)
//   i0      = min(floor(src), in_size - 1);  i1 = min(i0 + 1, in_size - 1)
//   w1      = clamp(src - i0, 0, 1);         w0 = 1 - w1
//   out     = h0 * (v0 * x[i0y][i0x] + v1 * x[i0y][i1x]) + h1 * (v0 * x[i1y][i0x] + v1 * x[i1y][i1x])
// with (h0, h1) the row weights and (v0, v1) the column weights, all fp32. It
// agrees with PyTorch to fp32 rounding (about 1e-5 relative); the same formula
// holds for downsampling (no antialiasing). Resize then normalise equals
// normalise then resize up to rounding, since both are affine per channel.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace vitscale::data {

// (C, H, W) uint8 -> (C, H, W) float, normalised.
void normalize_image(const std::uint8_t* image, int channels, int height, int width, const Normalization& norm,
                     float* out);

// (B, C, H, W) uint8 -> (B, C, H, W) float, normalised.
void normalize_batch(const std::uint8_t* images, int batch, int channels, int height, int width,
                     const Normalization& norm, float* out);

// One output coordinate's two source taps and weights (see the formula above).
struct LinearTap {
  int i0 = 0, i1 = 0;
  float w0 = 1.f, w1 = 0.f;
};
std::vector<LinearTap> bilinear_taps(int in_size, int out_size);  // (out_size)

// (C, in_h, in_w) uint8 -> (C, out_h, out_w) float on the 0..255 scale (not normalised).
void resize_bilinear_u8_to_float(const std::uint8_t* image, int channels, int in_h, int in_w, int out_h, int out_w,
                                 float* out);

// Same, then normalised: out = (resized / 255 - mean[c]) / std[c].
void resize_bilinear_u8_to_normalized(const std::uint8_t* image, int channels, int in_h, int in_w, int out_h,
                                      int out_w, const Normalization& norm, float* out);

}  // namespace vitscale::data
