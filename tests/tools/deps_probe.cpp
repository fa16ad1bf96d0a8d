// deps_probe.cpp — the five libraries the air-gapped GPU node gets only from
// .deps (tools/fetch_gpu_deps.sh), each used for real: Catch2 (this main),
// CLI11, nlohmann-json, OpenBLAS's cblas_sgemm, zlib. tools/gpu_check.sh
// builds it against the unpacked .deps with the system's copies hidden from
// CMake, checks which headers the compiler read and which libraries the loader
// picks, and runs it: a missing or unloadable package fails here, in seconds,
// not after the CUDA build.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cblas.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

TEST_CASE("CLI11 parses a long option", "[deps]") {
  CLI::App app("probe");
  int steps = 0;
  app.add_option("--max-steps", steps);
  std::array<const char*, 3> argv = {"probe", "--max-steps", "150"};
  REQUIRE_NOTHROW(app.parse(static_cast<int>(argv.size()), argv.data()));
  CHECK(steps == 150);
}

TEST_CASE("nlohmann-json round-trips a config", "[deps]") {
  const auto j = nlohmann::json::parse(R"({"train_batch_size": 256, "bf16": {"enabled": true}})");
  CHECK(j.at("train_batch_size").get<int>() == 256);
  CHECK(j.at("bf16").at("enabled").get<bool>());
  CHECK(nlohmann::json::parse(j.dump()) == j);
}

TEST_CASE("OpenBLAS multiplies", "[deps]") {
  // (2, 3) x (3, 2), row-major
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8, 9, 10, 11, 12};
  std::vector<float> c(4, -1.f);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 3, 1.f, a.data(), 3, b.data(), 2, 0.f, c.data(), 2);
  CHECK(c == std::vector<float>{58, 64, 139, 154});
}

TEST_CASE("zlib compresses and restores", "[deps]") {
  const std::string text(4096, 'v');
  std::vector<Bytef> packed(compressBound(text.size()));
  uLongf packed_size = packed.size();
  REQUIRE(compress(packed.data(), &packed_size, reinterpret_cast<const Bytef*>(text.data()), text.size()) == Z_OK);
  CHECK(packed_size < text.size() / 10);
  std::string back(text.size(), '\0');
  uLongf back_size = back.size();
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(back.data()), &back_size, packed.data(), packed_size) == Z_OK);
  CHECK(back == text);
}
