// test_fashion_mnist.cpp — IDX(gz) files written by hand and read back; bad files refused;
// the real Debian files checked when the dataset-fashion-mnist package is installed.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <filesystem>

#include "data/fashion_mnist.h"
#include "data/file_io.h"
#include "data_test_util.h"
#include "tests/test_skip.h"

using namespace vitscale::data;
using namespace vitscale::data::testing;

namespace {

const std::vector<std::uint8_t> kTrainLabels = {9, 0, 3, 7, 1};
const std::vector<std::uint8_t> kTestLabels = {2, 8, 5};

void write_small_fashion_mnist(const TempDir& dir, bool gzipped) {
  auto put = gzipped ? write_gzip : write_bytes;
  const std::string ext = gzipped ? ".gz" : "";
  put(dir.file("train-images-idx3-ubyte" + ext), idx_images(5, 28, 28));
  put(dir.file("train-labels-idx1-ubyte" + ext), idx_labels(kTrainLabels));
  put(dir.file("t10k-images-idx3-ubyte" + ext), idx_images(3, 28, 28));
  put(dir.file("t10k-labels-idx1-ubyte" + ext), idx_labels(kTestLabels));
}

void check_small(const Dataset& d, const std::vector<std::uint8_t>& labels) {
  REQUIRE(d.count == static_cast<std::int64_t>(labels.size()));
  CHECK(d.channels == 1);
  CHECK(d.height == 28);
  CHECK(d.width == 28);
  CHECK(d.num_classes == 10);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    CHECK(d.labels[i] == labels[i]);
    for (int j = 0; j < 28 * 28; ++j) REQUIRE(d.image(static_cast<std::int64_t>(i))[j] == pixel_pattern(static_cast<std::int64_t>(i), j));
  }
  CHECK(d.normalization.channels == 1);
  CHECK(d.normalization.mean[0] == Approx(0.2860f));
  CHECK(d.normalization.std[0] == Approx(0.3530f));
}

}  // namespace

TEST_CASE("fashion-mnist gzip IDX files read back byte for byte", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, true);
  check_small(load_fashion_mnist(dir.str(), Split::train, false), kTrainLabels);
  check_small(load_fashion_mnist(dir.str(), Split::test, false), kTestLabels);
}

TEST_CASE("fashion-mnist uncompressed IDX files are read too", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, false);
  check_small(load_fashion_mnist(dir.str(), Split::train, false), kTrainLabels);
}

TEST_CASE("fashion-mnist refuses wrong magic numbers", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, true);
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(5, 28, 28, 2049));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); },
               {"train-images-idx3-ubyte.gz", "wrong magic number 2049 (expected 2051 for IDX images)"});
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(5, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels(kTrainLabels, 2051));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); },
               {"train-labels-idx1-ubyte.gz", "wrong magic number 2051 (expected 2049 for IDX labels)"});
}

TEST_CASE("fashion-mnist refuses truncated and over-long IDX payloads", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, true);
  auto images = idx_images(5, 28, 28);
  images.pop_back();
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), images);
  // (the test split's image file is the broken one; the train split still loads)
  CHECK_NOTHROW(load_fashion_mnist(dir.str(), Split::train, false));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::test, false); },
               {"t10k-images-idx3-ubyte.gz", "3935 bytes after inflating, expected 3936", "truncated file"});
  images = idx_images(3, 28, 28);
  images.push_back(0);
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), images);
  expect_error([&] { load_fashion_mnist(dir.str(), Split::test, false); },
               {"t10k-images-idx3-ubyte.gz", "over-long file"});
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), {0, 0, 8});
  expect_error([&] { load_fashion_mnist(dir.str(), Split::test, false); },
               {"t10k-images-idx3-ubyte.gz", "shorter than the 16-byte IDX images header"});
}

TEST_CASE("fashion-mnist refuses a label out of range and mismatched counts", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, true);
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({9, 0, 10, 7, 1}));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); },
               {"train-labels-idx1-ubyte.gz", "label 2 is 10, outside [0, 10)"});
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({9, 0, 1, 7}));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); },
               {"train-labels-idx1-ubyte.gz", "4 labels for the 5 images"});
  expect_error([&] { load_fashion_mnist(dir.str(), Split::test, true); },
               {"t10k-images-idx3-ubyte.gz", "3 images, expected 10000"});
}

TEST_CASE("fashion-mnist refuses unreadable gzip streams", "[fashion_mnist]") {
  TempDir dir;
  write_small_fashion_mnist(dir, true);
  const std::string path = dir.file("train-images-idx3-ubyte.gz");
  const std::vector<std::uint8_t> good = read_file(path);
  REQUIRE(good.size() > 200);

  auto truncated = good;
  truncated.resize(good.size() / 2);
  write_bytes(path, truncated);
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); }, {path, "gzip stream ends early"});

  auto corrupt = good;
  for (std::size_t i = 20; i < 60; ++i) corrupt[i] ^= 0x5a;
  write_bytes(path, corrupt);
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); }, {path, "corrupt gzip stream"});

  write_bytes(path, idx_images(5, 28, 28));  // plain bytes under a .gz name
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); }, {path, "not a gzip stream"});

  std::filesystem::remove(path);
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train, false); },
               {"train-images-idx3-ubyte.gz", "cannot open"});
}

TEST_CASE("fashion-mnist real Debian files: 60000/10000 images and the known first labels", "[fashion_mnist][real]") {
  if (!is_regular_file(std::string(kFashionMnistDebianDir) + "/train-images-idx3-ubyte.gz"))
    VS_SKIP(std::string(kFashionMnistDebianDir) + " is absent (install Debian's dataset-fashion-mnist)");
  const Dataset train = load_fashion_mnist(kFashionMnistDebianDir, Split::train);
  const Dataset test = load_fashion_mnist(kFashionMnistDebianDir, Split::test);
  REQUIRE(train.count == 60000);
  REQUIRE(test.count == 10000);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  const std::vector<int> train_first = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9};
  const std::vector<int> test_first = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1};
  for (std::size_t i = 0; i < train_first.size(); ++i) CHECK(train.labels[i] == train_first[i]);
  for (std::size_t i = 0; i < test_first.size(); ++i) CHECK(test.labels[i] == test_first[i]);
  // Fashion-MNIST is balanced: 6000 / 1000 images per class.
  std::array<int, 10> train_hist{}, test_hist{};
  for (int l : train.labels) ++train_hist[static_cast<std::size_t>(l)];
  for (int l : test.labels) ++test_hist[static_cast<std::size_t>(l)];
  for (int k = 0; k < 10; ++k) {
    CHECK(train_hist[static_cast<std::size_t>(k)] == 6000);
    CHECK(test_hist[static_cast<std::size_t>(k)] == 1000);
  }
  // The published train-set statistics, recomputed from the pixels.
  double sum = 0.0, sum_sq = 0.0;
  for (std::uint8_t p : train.images) sum += p / 255.0, sum_sq += (p / 255.0) * (p / 255.0);
  const double n = static_cast<double>(train.images.size()), mean = sum / n;
  CHECK(mean == Approx(0.2860).margin(5e-4));
  CHECK(std::sqrt(sum_sq / n - mean * mean) == Approx(0.3530).margin(5e-4));
}
