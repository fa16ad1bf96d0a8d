// data_test_util.h — helpers for the data tests: a temporary directory that removes
// itself, and writers for the exact on-disk formats (CIFAR binary records, IDX, gzip).
#pragma once

#include <zlib.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace vitscale::data::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("vitscale_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test: cannot write " + path);
}

inline void write_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz) throw std::runtime_error("test: cannot open " + path);
  if (!bytes.empty()) gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(gz);
}

// A deterministic pixel value for image i, byte j (so every byte is checkable).
inline std::uint8_t pixel_pattern(std::int64_t i, std::int64_t j) {
  return static_cast<std::uint8_t>((i * 131 + j * 7 + (j >> 8) * 13) & 0xff);
}

// CIFAR records: leading label bytes then 3072 pattern pixels (R, G, B planes).
inline std::vector<std::uint8_t> cifar_records(const std::vector<std::vector<std::uint8_t>>& labels,
                                               std::int64_t first_image) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out.insert(out.end(), labels[i].begin(), labels[i].end());
    for (int j = 0; j < 3072; ++j) out.push_back(pixel_pattern(first_image + static_cast<std::int64_t>(i), j));
  }
  return out;
}

inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

inline std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                                            std::uint32_t magic = 2051) {
  std::vector<std::uint8_t> out;
  put_be32(out, magic);
  put_be32(out, count);
  put_be32(out, rows);
  put_be32(out, cols);
  for (std::uint32_t i = 0; i < count; ++i)
    for (std::uint32_t j = 0; j < rows * cols; ++j) out.push_back(pixel_pattern(i, j));
  return out;
}

inline std::vector<std::uint8_t> idx_labels(const std::vector<std::uint8_t>& labels, std::uint32_t magic = 2049) {
  std::vector<std::uint8_t> out;
  put_be32(out, magic);
  put_be32(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// Expects `fn` to throw std::runtime_error with a one-line message containing every fragment.
template <class Fn>
void expect_error(Fn fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    FAIL("no exception thrown");
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find('\n') == std::string::npos);
    for (const auto& f : fragments) CHECK(message.find(f) != std::string::npos);
  }
}

}  // namespace vitscale::data::testing
