// image_test_util.h — PNG and JPEG files written with libpng and libjpeg
// themselves, for the decoder's and vit_predict's tests.
#pragma once

#include <jpeglib.h>
#include <png.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vitscale::testing {

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// pixels (H, W, channels) interleaved; channels 1 (grey), 3 (RGB) or 4 (RGBA).
inline std::vector<std::uint8_t> encode_png(const std::vector<std::uint8_t>& pixels, int width, int height,
                                            int channels) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr))
    throw std::runtime_error(std::string("encode_png: ") + image.message);
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr))
    throw std::runtime_error(std::string("encode_png: ") + image.message);
  out.resize(size);
  return out;
}

// pixels (H, W, channels) interleaved; channels 1 or 3. Errors abort the test (libjpeg's default).
inline std::vector<std::uint8_t> encode_jpeg(const std::vector<std::uint8_t>& pixels, int width, int height,
                                             int channels, int quality = 98) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        const_cast<std::uint8_t*>(pixels.data()) + static_cast<std::size_t>(cinfo.next_scanline) * width * channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<std::uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

// A smooth test picture (H, W, 3): JPEG keeps it within a few levels.
inline std::vector<std::uint8_t> smooth_rgb(int width, int height) {
  std::vector<std::uint8_t> p(static_cast<std::size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      std::uint8_t* px = p.data() + (static_cast<std::size_t>(y) * width + x) * 3;
      px[0] = static_cast<std::uint8_t>(40 + 160 * x / std::max(1, width - 1));
      px[1] = static_cast<std::uint8_t>(200 - 150 * y / std::max(1, height - 1));
      px[2] = 128;
    }
  return p;
}

}  // namespace vitscale::testing
