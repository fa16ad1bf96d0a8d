// The safetensors reader/writer: round trip, and refusal of damaged files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <unistd.h>

#include "runtime/safetensors.h"

using namespace vitscale;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("vitscale-st-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

SafetensorsFile sample() {
  SafetensorsFile f;
  f.metadata["format"] = "pt";
  f.tensors.push_back({"a.weight", {2, 3}, {1, 2, 3, 4, 5, -6.5f}});
  f.tensors.push_back({"b", {4}, {0.25f, 1e-7f, -3e5f, 42}});
  return f;
}

}  // namespace

TEST_CASE("safetensors files round-trip names, shapes, values and metadata", "[safetensors]") {
  const fs::path p = temp_dir() / "rt.safetensors";
  write_safetensors(p.string(), sample());
  const SafetensorsFile r = read_safetensors(p.string());
  REQUIRE(r.tensors.size() == 2);
  CHECK(r.find("a.weight")->shape == std::vector<std::int64_t>{2, 3});
  CHECK(r.find("a.weight")->values == sample().tensors[0].values);
  CHECK(r.find("b")->values == sample().tensors[1].values);
  CHECK(r.metadata.at("format") == "pt");
  // The header length is the first 8 bytes, and the data starts 8-byte aligned.
  const std::string raw = slurp(p);
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(raw.size() == 8 + n + 4 * 10);
  CHECK(raw[8] == '{');
}

TEST_CASE("damaged safetensors files are refused naming the file and the problem", "[safetensors]") {
  const fs::path dir = temp_dir();
  const fs::path good = dir / "good.safetensors";
  write_safetensors(good.string(), sample());
  const std::string raw = slurp(good);

  const fs::path truncated = dir / "truncated.safetensors";
  spit(truncated, raw.substr(0, raw.size() - 3));
  CHECK_THROWS_WITH(read_safetensors(truncated.string()), Catch::Contains("truncated.safetensors") && Catch::Contains("truncated"));

  const fs::path longer = dir / "long.safetensors";
  spit(longer, raw + "xyz");
  CHECK_THROWS_WITH(read_safetensors(longer.string()), Catch::Contains("over-long"));

  const fs::path tiny = dir / "tiny.safetensors";
  spit(tiny, "abc");
  CHECK_THROWS_WITH(read_safetensors(tiny.string()), Catch::Contains("truncated"));

  const fs::path badjson = dir / "badjson.safetensors";
  std::string b = raw;
  b[8] = '[';
  spit(badjson, b);
  CHECK_THROWS_AS(read_safetensors(badjson.string()), std::runtime_error);

  CHECK_THROWS_WITH(read_safetensors((dir / "missing.safetensors").string()), Catch::Contains("cannot open"));
}

TEST_CASE("an atomic write leaves no temporary file and replaces the target", "[safetensors]") {
  const fs::path dir = temp_dir() / "atomic";
  fs::create_directories(dir);
  const fs::path p = dir / "f.bin";
  write_file_atomically(p.string(), "old");
  write_file_atomically(p.string(), "new contents");
  CHECK(slurp(p) == "new contents");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);
}
