// cifar.cpp — the CIFAR-10 / CIFAR-100 binary readers.
#include "data/cifar.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "data/file_io.h"

namespace vitscale::data {

namespace {

// One binary file's layout: the leading label bytes of a record, the number of
// classes each ranges over, and which of them is the label we keep.
struct RecordFormat {
  const char* format_name;       // "CIFAR-10" / "CIFAR-100"
  const char* label_names[2];    // "label" / "coarse label", "fine label"
  int label_classes[2];          // classes of each leading byte
  int label_bytes;               // 1 or 2
  int keep;                      // which leading byte is the label we keep
  std::int64_t record_bytes() const { return label_bytes + kCifarImageBytes; }
};

// Checks and appends one file's records to `out` (images (N, 3, 32, 32), labels).
void append_cifar_file(const std::string& path, const RecordFormat& format, std::int64_t expected_records,
                       Dataset& out) {
  const std::vector<std::uint8_t> bytes = read_file(path);
  const auto size = static_cast<std::int64_t>(bytes.size());
  const std::int64_t record = format.record_bytes();
  if (expected_records > 0 && size != expected_records * record)
    throw std::runtime_error(path + ": " + std::to_string(size) + " bytes, expected " +
                             std::to_string(expected_records * record) + " (" + std::to_string(expected_records) +
                             " " + format.format_name + " records of " + std::to_string(record) + " bytes): " +
                             (size < expected_records * record ? "truncated file" : "over-long file"));
  if (size == 0) throw std::runtime_error(path + ": empty file, no " + std::string(format.format_name) + " records");
  if (size % record != 0)
    throw std::runtime_error(path + ": " + std::to_string(size) + " bytes is not a whole number of " +
                             std::to_string(record) + "-byte " + format.format_name +
                             " records (truncated or over-long file)");
  const std::int64_t n = size / record;
  for (std::int64_t i = 0; i < n; ++i)
    for (int k = 0; k < format.label_bytes; ++k) {
      const int label = bytes[static_cast<std::size_t>(i * record + k)];
      if (label >= format.label_classes[k])
        throw std::runtime_error(path + ": record " + std::to_string(i) + " has " + format.label_names[k] + " " +
                                 std::to_string(label) + ", outside [0, " + std::to_string(format.label_classes[k]) +
                                 ")");
    }
  const std::size_t first = out.images.size();
  out.images.resize(first + static_cast<std::size_t>(n) * kCifarImageBytes);
  out.labels.reserve(out.labels.size() + static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t* rec = bytes.data() + i * record;
    out.labels.push_back(rec[format.keep]);
    std::copy_n(rec + format.label_bytes, kCifarImageBytes,
                out.images.data() + first + static_cast<std::size_t>(i) * kCifarImageBytes);  // (3, 32, 32)
  }
  out.count += n;
}

// Class names, one per non-empty line; absent file -> empty list.
std::vector<std::string> read_class_names(const std::string& path, int expected) {
  if (!is_regular_file(path)) return {};
  const std::vector<std::uint8_t> bytes = read_file(path);
  std::vector<std::string> names;
  std::string line;
  for (std::uint8_t b : bytes) {
    if (b == '\n') {
      if (!line.empty()) names.push_back(line);
      line.clear();
    } else if (b != '\r') {
      line.push_back(static_cast<char>(b));
    }
  }
  if (!line.empty()) names.push_back(line);
  if (static_cast<int>(names.size()) != expected)
    throw std::runtime_error(path + ": " + std::to_string(names.size()) + " class names, expected " +
                             std::to_string(expected));
  return names;
}

Dataset empty_cifar(const std::string& name, const std::string& dir, Split split, int num_classes) {
  Dataset d;
  d.name = name;
  d.source = dir;
  d.split = split;
  d.channels = 3;
  d.height = 32;
  d.width = 32;
  d.num_classes = num_classes;
  return d;
}

std::string join(const std::string& dir, const char* file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

}  // namespace

Dataset load_cifar10(const std::string& dir, Split split, bool check_official_counts) {
  if (!is_directory(dir)) throw std::runtime_error(dir + ": CIFAR-10 directory does not exist");
  Dataset d = empty_cifar("cifar10", dir, split, 10);
  d.normalization = cifar10_normalization();
  const RecordFormat format{"CIFAR-10", {"label", ""}, {10, 0}, 1, 0};
  const std::int64_t expected = check_official_counts ? 10000 : -1;
  if (split == Split::train) {
    if (check_official_counts) d.images.reserve(std::size_t{50000} * kCifarImageBytes);
    for (int b = 1; b <= 5; ++b)
      append_cifar_file(join(dir, ("data_batch_" + std::to_string(b) + ".bin").c_str()), format, expected, d);
  } else {
    append_cifar_file(join(dir, "test_batch.bin"), format, expected, d);
  }
  d.class_names = read_class_names(join(dir, "batches.meta.txt"), 10);
  if (d.class_names.empty())
    d.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  validate(d);
  return d;
}

Dataset load_cifar100(const std::string& dir, Split split, Cifar100Labels labels, bool check_official_counts) {
  if (!is_directory(dir)) throw std::runtime_error(dir + ": CIFAR-100 directory does not exist");
  const bool fine = labels == Cifar100Labels::fine;
  Dataset d = empty_cifar(fine ? "cifar100" : "cifar100-coarse", dir, split, fine ? 100 : 20);
  d.normalization = cifar100_normalization();
  // Both label bytes are range-checked, whichever one we keep.
  const RecordFormat format{"CIFAR-100", {"coarse label", "fine label"}, {20, 100}, 2, fine ? 1 : 0};
  const std::int64_t expected = !check_official_counts ? -1 : split == Split::train ? 50000 : 10000;
  append_cifar_file(join(dir, split == Split::train ? "train.bin" : "test.bin"), format, expected, d);
  d.class_names = read_class_names(join(dir, fine ? "fine_label_names.txt" : "coarse_label_names.txt"), d.num_classes);
  validate(d);
  return d;
}

}  // namespace vitscale::data
