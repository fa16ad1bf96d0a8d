// image_test_util.h — PNG and JPEG files written with libpng and libjpeg
// themselves, for the decoder's and vit_predict's tests.
#pragma once

#include <jpeglib.h>
#include <png.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

// pixels (H, W, 3): a picture of one colour with a faint diagonal ripple (so it is not flat), `seed` moving it.
inline std::vector<std::uint8_t> tinted_rgb(int width, int height, const std::uint8_t rgb[3], int seed = 0) {
  std::vector<std::uint8_t> p(static_cast<std::size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = rgb[c] + ((x + y + seed) % 5) * 4 - 8;
        p[(static_cast<std::size_t>(y) * width + x) * 3 + c] = static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
      }
  return p;
}

// Writes pixels (H, W, 3) as PNG or JPEG, by the name's extension (.png, else JPEG).
inline void write_rgb_image(const std::string& path, const std::vector<std::uint8_t>& pixels, int width, int height) {
  const bool png = path.size() >= 4 && path.compare(path.size() - 4, 4, ".png") == 0;
  write_bytes(path, png ? encode_png(pixels, width, height, 3) : encode_jpeg(pixels, width, height, 3));
}

// A small colour-coded ImageFolder tree (class = colour, so a model can learn it):
//   DIR/train/{blue,empty,green,red}/   blue, green, red: `train_per_class` files each,
//                                       alternating .png and .jpg, 24x20 (not square), red's last in a subfolder
//   DIR/val/{green,red}/                `val_per_class` each: blue is missing from val, empty has no file
// With `corrupt`: DIR/train/red/broken.jpg, a JPEG cut off after 100 bytes.
inline void write_colour_folder(const std::filesystem::path& root, int train_per_class, int val_per_class,
                                bool corrupt) {
  namespace fs = std::filesystem;
  const std::uint8_t colours[3][3] = {{40, 60, 210}, {50, 200, 60}, {220, 40, 30}};
  const char* names[3] = {"blue", "green", "red"};
  fs::create_directories(root / "train" / "empty");
  for (int split = 0; split < 2; ++split)
    for (int k = 0; k < 3; ++k) {
      if (split == 1 && k == 0) continue;
      const fs::path dir = root / (split == 0 ? "train" : "val") / names[k];
      fs::create_directories(dir / "more");
      const int n = split == 0 ? train_per_class : val_per_class;
      for (int i = 0; i < n; ++i) {
        const std::string name = std::to_string(i) + (i % 2 == 0 ? ".png" : ".jpg");
        const fs::path path = (k == 2 && i == n - 1) ? dir / "more" / name : dir / name;
        write_rgb_image(path.string(), tinted_rgb(24, 20, colours[k], i + 7 * split), 24, 20);
      }
    }
  if (corrupt) {
    std::vector<std::uint8_t> jpeg = encode_jpeg(smooth_rgb(24, 20), 24, 20, 3);
    jpeg.resize(100);
    write_bytes((root / "train" / "red" / "broken.jpg").string(), jpeg);
  }
}

}  // namespace vitscale::testing
