// test_cifar.cpp — CIFAR-10/100 binary files written byte by byte, read back, and refused when bad.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "data/cifar.h"
#include "data_test_util.h"

using namespace vitscale::data;
using namespace vitscale::data::testing;

namespace {

// Five train batches of 3 records and a test batch of 2, labels (i * 3) % 10.
void write_small_cifar10(const TempDir& dir) {
  for (int b = 0; b < 5; ++b) {
    std::vector<std::vector<std::uint8_t>> labels;
    for (int i = 0; i < 3; ++i) labels.push_back({static_cast<std::uint8_t>(((b * 3 + i) * 3) % 10)});
    write_bytes(dir.file("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_records(labels, b * 3));
  }
  write_bytes(dir.file("test_batch.bin"), cifar_records({{7}, {0}}, 100));
  const std::string names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  write_bytes(dir.file("batches.meta.txt"), std::vector<std::uint8_t>(names.begin(), names.end()));
}

}  // namespace

TEST_CASE("cifar10 binary files read back byte for byte", "[cifar]") {
  TempDir dir;
  write_small_cifar10(dir);
  const Dataset train = load_cifar10(dir.str(), Split::train, /*check_official_counts=*/false);
  REQUIRE(train.count == 15);
  CHECK(train.channels == 3);
  CHECK(train.height == 32);
  CHECK(train.width == 32);
  CHECK(train.num_classes == 10);
  REQUIRE(train.class_names.size() == 10);
  CHECK(train.class_names[9] == "truck");
  for (int i = 0; i < 15; ++i) {
    CHECK(train.labels[static_cast<std::size_t>(i)] == (i * 3) % 10);
    // Record bytes 1..3072 are the R plane, then G, then B: exactly (C, H, W).
    for (int j = 0; j < 3072; ++j) REQUIRE(train.image(i)[j] == pixel_pattern(i, j));
  }
  CHECK(train.normalization.mean[0] == Approx(0.4914f));
  CHECK(train.normalization.std[2] == Approx(0.2616f));

  const Dataset test = load_cifar10(dir.str(), Split::test, false);
  REQUIRE(test.count == 2);
  CHECK(test.labels[0] == 7);
  CHECK(test.labels[1] == 0);
  for (int j = 0; j < 3072; ++j) REQUIRE(test.image(1)[j] == pixel_pattern(101, j));
}

TEST_CASE("cifar10 refuses small files when official counts are required", "[cifar]") {
  TempDir dir;
  write_small_cifar10(dir);
  expect_error([&] { load_cifar10(dir.str(), Split::train, true); },
               {"data_batch_1.bin", "9219 bytes", "expected 30730000", "truncated file"});
}

TEST_CASE("cifar10 refuses an over-long batch file", "[cifar]") {
  TempDir dir;
  std::vector<std::uint8_t> bytes(10001u * 3073u, 0);  // 10001 records of label 0
  write_bytes(dir.file("test_batch.bin"), bytes);
  expect_error([&] { load_cifar10(dir.str(), Split::test, true); }, {"test_batch.bin", "over-long file"});
}

TEST_CASE("cifar10 refuses a file that is not a whole number of records", "[cifar]") {
  TempDir dir;
  write_small_cifar10(dir);
  auto bytes = cifar_records({{1}, {2}}, 0);
  bytes.resize(bytes.size() - 100);
  write_bytes(dir.file("data_batch_4.bin"), bytes);
  expect_error([&] { load_cifar10(dir.str(), Split::train, false); },
               {"data_batch_4.bin", "not a whole number of 3073-byte CIFAR-10 records"});
  write_bytes(dir.file("data_batch_4.bin"), {});
  expect_error([&] { load_cifar10(dir.str(), Split::train, false); }, {"data_batch_4.bin", "empty file"});
}

TEST_CASE("cifar10 refuses a label out of range, a missing file and a missing directory", "[cifar]") {
  TempDir dir;
  write_small_cifar10(dir);
  write_bytes(dir.file("data_batch_2.bin"), cifar_records({{1}, {10}}, 0));
  expect_error([&] { load_cifar10(dir.str(), Split::train, false); },
               {"data_batch_2.bin", "record 1 has label 10, outside [0, 10)"});
  std::filesystem::remove(dir.file("data_batch_3.bin"));
  write_bytes(dir.file("data_batch_2.bin"), cifar_records({{1}}, 0));
  expect_error([&] { load_cifar10(dir.str(), Split::train, false); }, {"data_batch_3.bin", "cannot open"});
  expect_error([&] { load_cifar10(dir.file("nowhere"), Split::train, false); }, {"nowhere", "does not exist"});
}

TEST_CASE("cifar10 refuses a class-name file with the wrong number of names", "[cifar]") {
  TempDir dir;
  write_small_cifar10(dir);
  const std::string names = "airplane\nautomobile\n";
  write_bytes(dir.file("batches.meta.txt"), std::vector<std::uint8_t>(names.begin(), names.end()));
  expect_error([&] { load_cifar10(dir.str(), Split::test, false); }, {"batches.meta.txt", "2 class names, expected 10"});
}

TEST_CASE("cifar100 reads fine labels by default and coarse on request", "[cifar]") {
  TempDir dir;
  // (coarse, fine) pairs.
  const std::vector<std::vector<std::uint8_t>> labels = {{4, 30}, {19, 99}, {0, 0}, {11, 57}};
  write_bytes(dir.file("train.bin"), cifar_records(labels, 0));
  write_bytes(dir.file("test.bin"), cifar_records({{3, 42}}, 50));

  const Dataset fine = load_cifar100(dir.str(), Split::train, Cifar100Labels::fine, false);
  REQUIRE(fine.count == 4);
  CHECK(fine.name == "cifar100");
  CHECK(fine.num_classes == 100);
  CHECK(fine.class_names.empty());
  for (std::size_t i = 0; i < labels.size(); ++i) CHECK(fine.labels[i] == labels[i][1]);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3072; ++j) REQUIRE(fine.image(i)[j] == pixel_pattern(i, j));
  CHECK(fine.normalization.mean[0] == Approx(0.5071f));

  const Dataset coarse = load_cifar100(dir.str(), Split::train, Cifar100Labels::coarse, false);
  CHECK(coarse.name == "cifar100-coarse");
  CHECK(coarse.num_classes == 20);
  for (std::size_t i = 0; i < labels.size(); ++i) CHECK(coarse.labels[i] == labels[i][0]);
  CHECK(coarse.images == fine.images);

  const Dataset test = load_cifar100(dir.str(), Split::test, Cifar100Labels::fine, false);
  REQUIRE(test.count == 1);
  CHECK(test.labels[0] == 42);
  for (int j = 0; j < 3072; ++j) REQUIRE(test.image(0)[j] == pixel_pattern(50, j));
}

TEST_CASE("cifar100 checks both label bytes and the record size", "[cifar]") {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_records({{4, 30}, {3, 100}}, 0));
  expect_error([&] { load_cifar100(dir.str(), Split::train, Cifar100Labels::fine, false); },
               {"train.bin", "record 1 has fine label 100, outside [0, 100)"});
  write_bytes(dir.file("train.bin"), cifar_records({{20, 30}}, 0));
  expect_error([&] { load_cifar100(dir.str(), Split::train, Cifar100Labels::fine, false); },
               {"train.bin", "record 0 has coarse label 20, outside [0, 20)"});
  // A CIFAR-10 file (3073-byte records) handed over as CIFAR-100 (3074-byte records).
  write_bytes(dir.file("train.bin"), cifar_records({{1}, {2}}, 0));
  expect_error([&] { load_cifar100(dir.str(), Split::train, Cifar100Labels::fine, false); },
               {"train.bin", "3074-byte CIFAR-100 records"});
  expect_error([&] { load_cifar100(dir.str(), Split::train, Cifar100Labels::fine, true); },
               {"train.bin", "expected 153700000", "truncated file"});
}
