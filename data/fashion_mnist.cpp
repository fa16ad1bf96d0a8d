// fashion_mnist.cpp — IDX parsing (big-endian headers, exact sizes) and the Fashion-MNIST loader.
#include "data/fashion_mnist.h"

#include <stdexcept>

#include "data/file_io.h"

namespace vitscale::data {

namespace {

std::runtime_error idx_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

void check_magic(const std::vector<std::uint8_t>& bytes, const std::string& path, std::uint32_t expected,
                 const char* what, std::size_t header_bytes) {
  if (bytes.size() < header_bytes)
    throw idx_error(path, std::to_string(bytes.size()) + " bytes, shorter than the " + std::to_string(header_bytes) +
                              "-byte IDX " + what + " header (truncated file)");
  const std::uint32_t magic = read_be32(bytes.data());
  if (magic != expected)
    throw idx_error(path, "wrong magic number " + std::to_string(magic) + " (expected " + std::to_string(expected) +
                              " for IDX " + what + ")");
}

void check_size(const std::vector<std::uint8_t>& bytes, const std::string& path, std::uint64_t expected,
                const std::string& what) {
  if (bytes.size() != expected)
    throw idx_error(path, std::to_string(bytes.size()) + " bytes after inflating, expected " +
                              std::to_string(expected) + " for " + what + ": " +
                              (bytes.size() < expected ? "truncated file" : "over-long file"));
}

// "<dir>/<base>.gz" when it exists, else "<dir>/<base>" when that exists, else the .gz name
// (so that the error says which file was expected).
std::string pick_file(const std::string& dir, const std::string& base, bool& gzipped) {
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  gzipped = true;
  if (is_regular_file(prefix + base + ".gz")) return prefix + base + ".gz";
  if (is_regular_file(prefix + base)) {
    gzipped = false;
    return prefix + base;
  }
  return prefix + base + ".gz";
}

}  // namespace

std::string fashion_mnist_file(Split split, bool images) {
  return std::string(split == Split::train ? "train" : "t10k") + (images ? "-images-idx3-ubyte" : "-labels-idx1-ubyte");
}

IdxImages parse_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  check_magic(bytes, path, kIdxImagesMagic, "images", 16);
  IdxImages out;
  const std::uint32_t count = read_be32(bytes.data() + 4), rows = read_be32(bytes.data() + 8),
                      cols = read_be32(bytes.data() + 12);
  if (count == 0 || rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
    throw idx_error(path, "implausible IDX image header: " + std::to_string(count) + " images of " +
                              std::to_string(rows) + "x" + std::to_string(cols));
  const std::uint64_t expected = 16 + std::uint64_t{count} * rows * cols;
  check_size(bytes, path, expected,
             std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols));
  out.count = count;
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  out.pixels.assign(bytes.begin() + 16, bytes.end());
  return out;
}

std::vector<std::int32_t> parse_idx_labels(const std::vector<std::uint8_t>& bytes, const std::string& path,
                                           int num_classes) {
  check_magic(bytes, path, kIdxLabelsMagic, "labels", 8);
  const std::uint32_t count = read_be32(bytes.data() + 4);
  if (count == 0) throw idx_error(path, "IDX label file holds 0 labels");
  check_size(bytes, path, 8 + std::uint64_t{count}, std::to_string(count) + " labels");
  std::vector<std::int32_t> labels(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const int label = bytes[8 + i];
    if (label >= num_classes)
      throw idx_error(path, "label " + std::to_string(i) + " is " + std::to_string(label) + ", outside [0, " +
                                std::to_string(num_classes) + ")");
    labels[i] = label;
  }
  return labels;
}

Dataset load_fashion_mnist(const std::string& dir, Split split, bool check_official_counts) {
  if (!is_directory(dir)) throw std::runtime_error(dir + ": Fashion-MNIST directory does not exist");
  bool images_gz = true, labels_gz = true;
  const std::string images_path = pick_file(dir, fashion_mnist_file(split, true), images_gz);
  const std::string labels_path = pick_file(dir, fashion_mnist_file(split, false), labels_gz);

  IdxImages images =
      parse_idx_images(images_gz ? read_gzip_file(images_path) : read_file(images_path), images_path);
  std::vector<std::int32_t> labels =
      parse_idx_labels(labels_gz ? read_gzip_file(labels_path) : read_file(labels_path), labels_path, 10);

  const std::int64_t official = split == Split::train ? 60000 : 10000;
  if (check_official_counts && images.count != official)
    throw std::runtime_error(images_path + ": " + std::to_string(images.count) + " images, expected " +
                             std::to_string(official) + " for the Fashion-MNIST " + split_name(split) + " split");
  if (check_official_counts && (images.rows != 28 || images.cols != 28))
    throw std::runtime_error(images_path + ": images are " + std::to_string(images.rows) + "x" +
                             std::to_string(images.cols) + ", expected 28x28");
  if (static_cast<std::int64_t>(labels.size()) != images.count)
    throw std::runtime_error(labels_path + ": " + std::to_string(labels.size()) + " labels for the " +
                             std::to_string(images.count) + " images of " + images_path);

  Dataset d;
  d.name = "fashion-mnist";
  d.source = dir;
  d.split = split;
  d.count = images.count;
  d.channels = 1;
  d.height = images.rows;
  d.width = images.cols;
  d.num_classes = 10;
  d.images = std::move(images.pixels);  // (N, 1, 28, 28): IDX rows are already (H, W)
  d.labels = std::move(labels);
  d.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  d.normalization = fashion_mnist_normalization();
  validate(d);
  return d;
}

}  // namespace vitscale::data
