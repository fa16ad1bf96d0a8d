// image_file.h — PNG and JPEG files to uint8 images (libpng, libjpeg-turbo),
// and the resize that fits them to a model's input.
//
// Built only when both libraries are found (VITSCALE_HAVE_IMAGE_IO; Debian's
// libpng-dev and libjpeg62-turbo-dev). The format is told by the file's first
// bytes, not its name. Every failure — not a PNG or JPEG, a truncated or
// corrupt stream (libjpeg's warnings, such as a premature end of data, count
// as failures: they would otherwise leave grey rows), an unsupported colour
// space — throws std::runtime_error with one line naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vitscale::data {

// An image as decoded: (H, W, 3) interleaved RGB. Grey files are replicated
// to three channels; transparency is composited onto white.
struct RgbImage {
  int height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // (H, W, 3)
};

RgbImage read_image_file(const std::string& path);
RgbImage decode_image(const std::uint8_t* data, std::size_t size, const std::string& what);

// The model's input from a decoded image: the centred square crop (the
// longer side trimmed evenly), resized to side x side with an antialiased
// bilinear (triangle) filter whose support widens with the scale — PIL's
// and torchvision's antialias=True — then (C, side, side) planar. channels 1:
// ITU-R 601-2 luma, as PIL's convert("L"); 3: RGB.
std::vector<std::uint8_t> to_model_input(const RgbImage& image, int channels, int side);

// PIL's convert("L"): (R 19595 + G 38470 + B 7471 + 2^15) >> 16.
inline std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 32768u) >> 16);
}

}  // namespace vitscale::data
