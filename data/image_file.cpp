#include "data/image_file.h"

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "data/file_io.h"

namespace vitscale::data {

namespace {

constexpr std::uint8_t kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

RgbImage decode_png(const std::uint8_t* data, std::size_t size, const std::string& what) {
  // libpng's simplified API reports errors in image.message, without longjmp.
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size))
    throw std::runtime_error(what + ": bad PNG: " + image.message);
  image.format = PNG_FORMAT_RGB;
  RgbImage out;
  out.height = static_cast<int>(image.height);
  out.width = static_cast<int>(image.width);
  if (image.height == 0 || image.width == 0 || image.height > 32768 || image.width > 32768) {
    png_image_free(&image);
    throw std::runtime_error(what + ": PNG of " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                             " pixels is refused (1 to 32768 a side)");
  }
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  const png_color white = {255, 255, 255};
  if (!png_image_finish_read(&image, &white, out.pixels.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw std::runtime_error(what + ": bad PNG: " + message);
  }
  return out;
}

// libjpeg reports errors through error_exit, which must not return: it
// longjmps back to decode_jpeg_into, whose frame holds no object with a
// destructor. Warnings (a premature end of data, corrupt data) are errors here.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void jpeg_fail(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

extern "C" void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);  // a warning: the data is damaged
}

// Resizes out->pixels once the size is known; returns false with errors->message set.
bool decode_jpeg_into(const std::uint8_t* data, std::size_t size, RgbImage* out, JpegErrors* errors) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&errors->mgr);
  errors->mgr.error_exit = jpeg_fail;
  errors->mgr.emit_message = jpeg_message;
  if (setjmp(errors->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;  // grey is replicated; CMYK is refused by libjpeg
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3 || cinfo.output_width > 32768 || cinfo.output_height > 32768) {
    std::snprintf(errors->message, sizeof errors->message, "JPEG of %ux%u pixels, %d components is refused",
                  cinfo.output_width, cinfo.output_height, cinfo.output_components);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  out->width = static_cast<int>(cinfo.output_width);
  out->height = static_cast<int>(cinfo.output_height);
  out->pixels.resize(static_cast<std::size_t>(out->width) * out->height * 3);  // before any further longjmp
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + static_cast<std::size_t>(cinfo.output_scanline) * out->width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// Antialiased bilinear taps: output j of n covers input [j s, (j + 1) s), s = in / n.
struct Taps {
  std::vector<int> first, count;
  std::vector<float> weights;  // count[j] weights from offset[j]
  std::vector<int> offset;
};

Taps triangle_taps(int in, int n) {
  Taps t;
  const double scale = static_cast<double>(in) / n, support = std::max(scale, 1.0);
  for (int j = 0; j < n; ++j) {
    const double centre = (j + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(centre - support)));
    const int hi = std::min(in - 1, static_cast<int>(std::ceil(centre + support)));
    t.first.push_back(lo);
    t.offset.push_back(static_cast<int>(t.weights.size()));
    double sum = 0;
    std::vector<double> w;
    for (int i = lo; i <= hi; ++i) {
      const double v = std::max(0.0, 1.0 - std::abs(i + 0.5 - centre) / support);
      w.push_back(v);
      sum += v;
    }
    for (double v : w) t.weights.push_back(static_cast<float>(sum > 0 ? v / sum : 0.0));
    t.count.push_back(static_cast<int>(w.size()));
  }
  return t;
}

}  // namespace

RgbImage decode_image(const std::uint8_t* data, std::size_t size, const std::string& what) {
  if (size >= 8 && std::memcmp(data, kPngMagic, 8) == 0) return decode_png(data, size, what);
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
    RgbImage out;
    JpegErrors errors{};
    if (!decode_jpeg_into(data, size, &out, &errors)) throw std::runtime_error(what + ": bad JPEG: " + errors.message);
    return out;
  }
  throw std::runtime_error(what + ": not a PNG or JPEG image" + (size == 0 ? " (empty file)" : ""));
}

RgbImage read_image_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

std::vector<std::uint8_t> to_model_input(const RgbImage& image, int channels, int side) {
  if (channels != 1 && channels != 3) throw std::invalid_argument("to_model_input: channels must be 1 or 3");
  const int crop = std::min(image.height, image.width);
  const int y0 = (image.height - crop) / 2, x0 = (image.width - crop) / 2;
  const Taps taps = triangle_taps(crop, side);
  // Rows first: (side, crop, 3) in float, then columns.
  std::vector<float> rows(static_cast<std::size_t>(side) * crop * 3, 0.f);
  for (int j = 0; j < side; ++j)
    for (int k = 0; k < taps.count[j]; ++k) {
      const float w = taps.weights[static_cast<std::size_t>(taps.offset[j] + k)];
      const std::uint8_t* src =
          image.pixels.data() + (static_cast<std::size_t>(y0 + taps.first[j] + k) * image.width + x0) * 3;
      float* dst = rows.data() + static_cast<std::size_t>(j) * crop * 3;
      for (int x = 0; x < crop * 3; ++x) dst[x] += w * static_cast<float>(src[x]);
    }
  std::vector<std::uint8_t> out(static_cast<std::size_t>(channels) * side * side);
  const std::size_t plane = static_cast<std::size_t>(side) * side;
  for (int y = 0; y < side; ++y)
    for (int j = 0; j < side; ++j) {
      float rgb[3] = {0.f, 0.f, 0.f};
      for (int k = 0; k < taps.count[j]; ++k) {
        const float w = taps.weights[static_cast<std::size_t>(taps.offset[j] + k)];
        const float* src = rows.data() + (static_cast<std::size_t>(y) * crop + taps.first[j] + k) * 3;
        for (int c = 0; c < 3; ++c) rgb[c] += w * src[c];
      }
      std::uint8_t v[3];
      for (int c = 0; c < 3; ++c) v[c] = static_cast<std::uint8_t>(std::clamp(std::lround(rgb[c]), 0L, 255L));
      const std::size_t at = static_cast<std::size_t>(y) * side + j;
      if (channels == 3) {
        for (int c = 0; c < 3; ++c) out[c * plane + at] = v[c];
      } else {
        out[at] = luma(v[0], v[1], v[2]);
      }
    }
  return out;
}

}  // namespace vitscale::data
