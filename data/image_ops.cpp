// image_ops.cpp — normalisation and the bilinear-resize reference (see image_ops.h for the exact formulas).
#include "data/image_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace vitscale::data {

namespace {

// Per-channel lookup tables: lut[c][x] = (float(x) / 255.f - mean[c]) / std[c], the very
// expression of the definition evaluated once per byte value, so results are bit-identical.
struct NormalizeTable {
  float lut[3][256];
  explicit NormalizeTable(const Normalization& norm) {
    for (int c = 0; c < norm.channels; ++c)
      for (int x = 0; x < 256; ++x) lut[c][x] = (static_cast<float>(x) / 255.f - norm.mean[c]) / norm.std[c];
  }
};

void check_channels(const char* op, int channels, const Normalization& norm) {
  if (channels != norm.channels || channels < 1 || channels > 3)
    throw std::invalid_argument(std::string(op) + ": image has " + std::to_string(channels) +
                                " channels, normalisation " + std::to_string(norm.channels));
}

void normalize_with(const NormalizeTable& table, const std::uint8_t* image, int channels, int plane, float* out) {
  for (int c = 0; c < channels; ++c) {
    const float* lut = table.lut[c];
    const std::uint8_t* src = image + static_cast<std::size_t>(c) * plane;  // (H, W)
    float* dst = out + static_cast<std::size_t>(c) * plane;                 // (H, W)
    for (int i = 0; i < plane; ++i) dst[i] = lut[src[i]];
  }
}

}  // namespace

void normalize_image(const std::uint8_t* image, int channels, int height, int width, const Normalization& norm,
                     float* out) {
  check_channels("normalize_image", channels, norm);
  normalize_with(NormalizeTable(norm), image, channels, height * width, out);
}

void normalize_batch(const std::uint8_t* images, int batch, int channels, int height, int width,
                     const Normalization& norm, float* out) {
  check_channels("normalize_batch", channels, norm);
  const NormalizeTable table(norm);
  const std::size_t image_elems = static_cast<std::size_t>(channels) * height * width;
  for (int b = 0; b < batch; ++b)
    normalize_with(table, images + b * image_elems, channels, height * width, out + b * image_elems);
}

std::vector<LinearTap> bilinear_taps(int in_size, int out_size) {
  if (in_size < 1 || out_size < 1)
    throw std::invalid_argument("bilinear_taps: sizes " + std::to_string(in_size) + " -> " + std::to_string(out_size));
  std::vector<LinearTap> taps(static_cast<std::size_t>(out_size));
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  for (int d = 0; d < out_size; ++d) {
    const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.f);
    LinearTap& t = taps[static_cast<std::size_t>(d)];
    t.i0 = std::min(static_cast<int>(std::floor(src)), in_size - 1);
    t.i1 = std::min(t.i0 + 1, in_size - 1);
    t.w1 = std::clamp(src - static_cast<float>(t.i0), 0.f, 1.f);
    t.w0 = 1.f - t.w1;
  }
  return taps;
}

namespace {

template <class Finish>
void resize_bilinear(const std::uint8_t* image, int channels, int in_h, int in_w, int out_h, int out_w, float* out,
                     Finish finish) {
  const std::vector<LinearTap> rows = bilinear_taps(in_h, out_h), cols = bilinear_taps(in_w, out_w);
  for (int c = 0; c < channels; ++c) {
    const std::uint8_t* src = image + static_cast<std::size_t>(c) * in_h * in_w;  // (in_h, in_w)
    float* dst = out + static_cast<std::size_t>(c) * out_h * out_w;               // (out_h, out_w)
    for (int y = 0; y < out_h; ++y) {
      const LinearTap& r = rows[static_cast<std::size_t>(y)];
      const std::uint8_t* row0 = src + static_cast<std::size_t>(r.i0) * in_w;
      const std::uint8_t* row1 = src + static_cast<std::size_t>(r.i1) * in_w;
      for (int x = 0; x < out_w; ++x) {
        const LinearTap& k = cols[static_cast<std::size_t>(x)];
        const float top = k.w0 * static_cast<float>(row0[k.i0]) + k.w1 * static_cast<float>(row0[k.i1]);
        const float bottom = k.w0 * static_cast<float>(row1[k.i0]) + k.w1 * static_cast<float>(row1[k.i1]);
        dst[y * out_w + x] = finish(c, r.w0 * top + r.w1 * bottom);
      }
    }
  }
}

}  // namespace

void resize_bilinear_u8_to_float(const std::uint8_t* image, int channels, int in_h, int in_w, int out_h, int out_w,
                                 float* out) {
  resize_bilinear(image, channels, in_h, in_w, out_h, out_w, out, [](int, float v) { return v; });
}

void resize_bilinear_u8_to_normalized(const std::uint8_t* image, int channels, int in_h, int in_w, int out_h,
                                      int out_w, const Normalization& norm, float* out) {
  if (channels != norm.channels)
    throw std::invalid_argument("resize_bilinear_u8_to_normalized: image has " + std::to_string(channels) +
                                " channels, normalisation " + std::to_string(norm.channels));
  resize_bilinear(image, channels, in_h, in_w, out_h, out_w, out,
                  [&norm](int c, float v) { return (v / 255.f - norm.mean[c]) / norm.std[c]; });
}

}  // namespace vitscale::data
