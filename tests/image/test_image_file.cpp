// test_image_file.cpp — PNG and JPEG decoding and the model-input resize:
// round trips through files written by libpng and libjpeg, grey and alpha
// handling, every bad file refused in one line naming it.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "../train/train_util.h"
#include "data/image_file.h"
#include "image_test_util.h"

using namespace vitscale;
using namespace vitscale::data;
using namespace vitscale::testing;
namespace fs = std::filesystem;

namespace {

std::string refusal(const std::string& path) {
  try {
    read_image_file(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a PNG written by libpng decodes to its exact pixels, grey is replicated, alpha goes onto white", "[image]") {
  const vitscale::train::testing::TempDir s("image");
  const std::vector<std::uint8_t> rgb = smooth_rgb(7, 5);
  write_bytes(s / "rgb.png", encode_png(rgb, 7, 5, 3));
  const RgbImage a = read_image_file(s / "rgb.png");
  CHECK(a.width == 7);
  CHECK(a.height == 5);
  CHECK(a.pixels == rgb);

  write_bytes(s / "grey.png", encode_png({0, 100, 200, 255}, 2, 2, 1));
  const RgbImage g = read_image_file(s / "grey.png");
  CHECK(g.pixels == std::vector<std::uint8_t>{0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255});

  write_bytes(s / "rgba.png", encode_png({10, 20, 30, 0, 10, 20, 30, 255}, 2, 1, 4));
  const RgbImage t = read_image_file(s / "rgba.png");
  CHECK(t.pixels == std::vector<std::uint8_t>{255, 255, 255, 10, 20, 30});  // transparent: white
}

TEST_CASE("a JPEG written by libjpeg decodes close to its pixels, by content not by name", "[image]") {
  const vitscale::train::testing::TempDir s("image");
  const std::vector<std::uint8_t> rgb = smooth_rgb(32, 24);
  write_bytes(s / "photo.png", encode_jpeg(rgb, 32, 24, 3));  // the name lies: the bytes decide
  const RgbImage a = read_image_file(s / "photo.png");
  REQUIRE(a.width == 32);
  REQUIRE(a.height == 24);
  int worst = 0;
  for (std::size_t i = 0; i < rgb.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(rgb[i])));
  CHECK(worst <= 8);

  std::vector<std::uint8_t> grey(16 * 16, 77);
  write_bytes(s / "grey.jpg", encode_jpeg(grey, 16, 16, 1));
  const RgbImage g = read_image_file(s / "grey.jpg");
  for (std::size_t i = 0; i < g.pixels.size(); ++i) REQUIRE(std::abs(int(g.pixels[i]) - 77) <= 1);
}

TEST_CASE("a truncated PNG or JPEG, a text file, an empty file and a missing one are refused naming the file",
          "[image]") {
  const vitscale::train::testing::TempDir s("image");
  std::vector<std::uint8_t> png = encode_png(smooth_rgb(40, 40), 40, 40, 3);
  png.resize(png.size() / 2);
  write_bytes(s / "cut.png", png);
  std::vector<std::uint8_t> jpg = encode_jpeg(smooth_rgb(64, 64), 64, 64, 3);
  jpg.resize(jpg.size() / 2);
  write_bytes(s / "cut.jpg", jpg);
  write_bytes(s / "notes.jpg", {'h', 'e', 'l', 'l', 'o', '\n'});
  write_bytes(s / "empty.png", {});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {s / "cut.png", "bad PNG"},      {s / "cut.jpg", "bad JPEG"},        {s / "notes.jpg", "not a PNG or JPEG image"},
      {s / "empty.png", "empty file"}, {s / "missing.png", "missing.png"},
  };
  for (const auto& [path, why] : cases) {
    INFO(path);
    const std::string e = refusal(path);
    CHECK_THAT(e, Catch::StartsWith(path));
    CHECK_THAT(e, Catch::Contains(why));
    CHECK(e.find('\n') == std::string::npos);
  }
}

TEST_CASE("to_model_input crops the centre square, resizes antialiased, and converts channels", "[image]") {
  // Same size: the pixels, planar.
  RgbImage im{2, 2, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
  CHECK(to_model_input(im, 3, 2) == std::vector<std::uint8_t>{1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12});
  // Wide image: the centre square. Columns 0 and 3 are 0, the middle two 200 (of a 4x2 image: crop 2 wide).
  RgbImage wide{2, 4, {}};
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) wide.pixels.push_back(x == 0 || x == 3 ? 0 : 200);
  CHECK(to_model_input(wide, 3, 2) == std::vector<std::uint8_t>(12, 200));
  // Downscaling 4:1 averages (a 1-pixel stripe pattern becomes its mean), where
  // plain bilinear sampling would alias to one of the stripes.
  RgbImage stripes{16, 16, {}};
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) stripes.pixels.push_back(x % 2 ? 200 : 0);
  const std::vector<std::uint8_t> small = to_model_input(stripes, 3, 4);  // (3, 4, 4)
  for (std::size_t i = 0; i < small.size(); ++i) {
    const int x = static_cast<int>(i % 4);
    INFO("column " << x);
    if (x == 1 || x == 2) {
      REQUIRE(small[i] == 100);  // inside: the triangle covers as many dark as bright stripes
    } else {
      REQUIRE(std::abs(int(small[i]) - 100) <= 10);  // the border clips the filter
    }
  }
  // Grey: PIL's luma, exact for grey input.
  RgbImage px{1, 1, {255, 0, 0}};
  CHECK(to_model_input(px, 1, 1) == std::vector<std::uint8_t>{76});  // 255 * 0.299
  RgbImage gpx{1, 1, {123, 123, 123}};
  CHECK(to_model_input(gpx, 1, 3) == std::vector<std::uint8_t>(9, 123));  // upscaled constant
}
