// file_io.cpp — whole-file readers (plain and gzip through zlib) with one-line errors.
#include "data/file_io.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace vitscale::data {

namespace {

std::runtime_error file_error(const std::string& path, const std::string& problem) {
  return std::runtime_error(path + ": " + problem);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

void require_regular_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw file_error(path, "cannot open (no such file)");
  if (std::filesystem::is_directory(status)) throw file_error(path, "cannot open (is a directory)");
}

}  // namespace

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  require_regular_file(path);
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(chunk, 1, sizeof(chunk), file.get());
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof(chunk)) break;
  }
  if (std::ferror(file.get())) throw file_error(path, std::string("read error (") + std::strerror(errno) + ")");
  return bytes;
}

std::vector<std::uint8_t> read_gzip_file(const std::string& path, std::size_t max_bytes) {
  require_regular_file(path);
  std::unique_ptr<gzFile_s, GzCloser> gz(gzopen(path.c_str(), "rb"));
  if (!gz) throw file_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
  gzbuffer(gz.get(), 1 << 17);
  // gzread passes non-gzip input through unchanged; a .gz file that is not gzip is refused.
  if (gzdirect(gz.get())) throw file_error(path, "not a gzip stream (bad gzip header)");

  std::vector<std::uint8_t> bytes;
  constexpr unsigned kChunk = 1u << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + kChunk);
    const int got = gzread(gz.get(), bytes.data() + old, kChunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(gz.get(), &code);
      throw file_error(path, std::string("corrupt gzip stream: ") + (message ? message : "unknown zlib error"));
    }
    bytes.resize(old + static_cast<std::size_t>(got));
    if (bytes.size() > max_bytes)
      throw file_error(path, "gzip stream inflates past " + std::to_string(max_bytes) + " bytes");
    if (got == 0) break;
  }
  // A stream that stops before its trailer reads as EOF with Z_BUF_ERROR pending.
  int code = Z_OK;
  const char* message = gzerror(gz.get(), &code);
  if (code == Z_BUF_ERROR) throw file_error(path, "gzip stream ends early (truncated file)");
  if (code != Z_OK && code != Z_STREAM_END)
    throw file_error(path, std::string("corrupt gzip stream: ") + (message ? message : "unknown zlib error"));
  return bytes;
}

}  // namespace vitscale::data
