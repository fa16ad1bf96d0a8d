// fashion_mnist.h — Fashion-MNIST from its IDX files, gzip-compressed or not.
//
// Debian's dataset-fashion-mnist package installs, under
// /usr/share/datasets/fashion-mnist:
//   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (60000 images)
//   t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    (10000 images)
// IDX headers are big-endian 32-bit integers: images are magic 2051 (0x00000803:
// unsigned bytes, 3 dimensions), count, rows, cols, then count*rows*cols pixel
// bytes row-major; labels are magic 2049 (0x00000801), count, then count bytes
// in 0..9. Files are inflated whole through zlib (the uncompressed name without
// ".gz" is used when only that exists). Images become (N, 1, 28, 28) uint8.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vitscale::data {

constexpr const char* kFashionMnistDebianDir = "/usr/share/datasets/fashion-mnist";
constexpr std::uint32_t kIdxImagesMagic = 2051;
constexpr std::uint32_t kIdxLabelsMagic = 2049;

// `dir` holds the four files. With check_official_counts the image count must
// be 60000 (train) / 10000 (test); without it any positive count (test files).
Dataset load_fashion_mnist(const std::string& dir, Split split, bool check_official_counts = true);

// The base name of a split's file ("train-images-idx3-ubyte"), without ".gz".
std::string fashion_mnist_file(Split split, bool images);

// Decoded IDX contents; `path` only names the file in errors.
struct IdxImages {
  std::int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // (count, rows, cols) uint8
};
IdxImages parse_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& path);
std::vector<std::int32_t> parse_idx_labels(const std::vector<std::uint8_t>& bytes, const std::string& path,
                                           int num_classes);

}  // namespace vitscale::data
