// file_io.h — whole-file readers whose every failure is a one-line error naming the file.
//
// The dataset parsers read a file whole, then check its size and header against
// what the format promises. Reading goes through here so that "cannot open",
// "read error" and "corrupt gzip stream" all look alike: std::runtime_error with
// "<path>: <problem>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vitscale::data {

// The bytes of a regular file. Throws "<path>: cannot open (<reason>)" and the like.
std::vector<std::uint8_t> read_file(const std::string& path);

// The decompressed bytes of a gzip file, through zlib. Refuses a file that is not
// gzip ("not a gzip stream"), a damaged stream ("corrupt gzip stream: <zlib's
// message>"), a truncated one ("gzip stream ends early") and anything that
// inflates past max_bytes (a guard against a decompression bomb).
std::vector<std::uint8_t> read_gzip_file(const std::string& path, std::size_t max_bytes = std::size_t{1} << 31);

// True when `path` names an existing regular file (no exception).
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);

// Big-endian 32-bit integer at p (the IDX headers).
inline std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

}  // namespace vitscale::data
