// test_registry.cpp — datasets by name, the directory search and its error message, synthetic data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>

#include "data/dataset_registry.h"
#include "data/fashion_mnist.h"
#include "data/file_io.h"
#include "data_test_util.h"
#include "tests/test_skip.h"

using namespace vitscale::data;
using namespace vitscale::data::testing;

TEST_CASE("registry finds CIFAR under --data-dir or its standard folder", "[registry]") {
  TempDir dir;
  std::filesystem::create_directories(dir.file("cifar-10-batches-bin"));
  for (int b = 1; b <= 5; ++b)
    write_bytes(dir.file("cifar-10-batches-bin/data_batch_" + std::to_string(b) + ".bin"), cifar_records({{3}}, b));
  LoadOptions small;
  small.check_official_counts = false;
  const Dataset a = load_dataset("cifar10", dir.str(), Split::train, small);
  CHECK(a.count == 5);
  CHECK(a.source == dir.file("cifar-10-batches-bin"));
  const Dataset b = load_dataset("cifar10", dir.file("cifar-10-batches-bin"), Split::train, small);
  CHECK(b.images == a.images);
  // The train files are there, the test file is not: the error names both places tried.
  expect_error([&] { load_dataset("cifar10", dir.str(), Split::test, small); },
               {"cifar10/test: dataset not found", dir.str() + " (no test_batch.bin)",
                dir.file("cifar-10-batches-bin") + " (no test_batch.bin)", "tools/get_cifar.sh"});
}

TEST_CASE("registry error lists every default path when nothing is there", "[registry]") {
  const auto dirs = candidate_dirs("cifar100", "");
  REQUIRE(dirs.size() == 2);
  CHECK(dirs[0] == "./data/cifar-100-binary");
  CHECK(candidate_dirs("fashion-mnist", "")[0] == kFashionMnistDebianDir);
  TempDir dir;
  expect_error([&] { load_dataset("cifar100-coarse", dir.file("missing"), Split::train); },
               {"cifar100-coarse/train: dataset not found", dir.file("missing") + " (no such directory)",
                dir.file("missing/cifar-100-binary") + " (no such directory)", "tools/get_cifar.sh"});
  expect_error([&] { load_dataset("imagenet", "", Split::train); }, {"unknown dataset 'imagenet'", "cifar10"});
}

TEST_CASE("registry loads fashion-mnist from the Debian path by default", "[registry][real]") {
  if (!is_directory(kFashionMnistDebianDir)) VS_SKIP(std::string(kFashionMnistDebianDir) + " is absent");
  const Dataset d = load_dataset("fashion-mnist", "", Split::test);
  CHECK(d.count == 10000);
  CHECK(d.source == kFashionMnistDebianDir);
  const DatasetInfo info = dataset_info("fashion-mnist");
  CHECK(info.channels == d.channels);
  CHECK(info.test_count == d.count);
}

TEST_CASE("synthetic data is seeded, shaped as asked and learnable", "[registry][synthetic]") {
  LoadOptions options;
  options.synthetic.train_count = 2000;
  options.synthetic.test_count = 500;
  options.synthetic.channels = 3;
  options.synthetic.height = 16;
  options.synthetic.width = 12;
  options.synthetic.num_classes = 7;
  options.synthetic.seed = 42;
  const Dataset train = load_dataset("synthetic", "", Split::train, options);
  const Dataset again = load_dataset("synthetic", "", Split::train, options);
  const Dataset test = load_dataset("synthetic", "", Split::test, options);
  REQUIRE_NOTHROW(validate(train));
  CHECK(train.count == 2000);
  CHECK(test.count == 500);
  CHECK(train.image_bytes() == 3u * 16 * 12);
  CHECK(train.images == again.images);
  CHECK(train.labels == again.labels);
  options.synthetic.seed = 43;
  CHECK(load_dataset("synthetic", "", Split::train, options).images != train.images);

  // Nearest class mean on the train split classifies the test split well: learnable.
  const std::size_t D = train.image_bytes();
  std::vector<double> means(7 * D, 0.0);
  std::vector<int> counts(7, 0);
  for (std::int64_t i = 0; i < train.count; ++i) {
    const int k = train.labels[static_cast<std::size_t>(i)];
    ++counts[static_cast<std::size_t>(k)];
    for (std::size_t j = 0; j < D; ++j) means[k * D + j] += train.image(i)[j];
  }
  for (int k = 0; k < 7; ++k) {
    REQUIRE(counts[static_cast<std::size_t>(k)] > 100);  // every class present
    for (std::size_t j = 0; j < D; ++j) means[k * D + j] /= counts[static_cast<std::size_t>(k)];
  }
  int correct = 0;
  for (std::int64_t i = 0; i < test.count; ++i) {
    int best = -1;
    double best_d = 1e300;
    for (int k = 0; k < 7; ++k) {
      double d = 0.0;
      for (std::size_t j = 0; j < D; ++j) {
        const double e = test.image(i)[j] - means[k * D + j];
        d += e * e;
      }
      if (d < best_d) best_d = d, best = k;
    }
    correct += best == test.labels[static_cast<std::size_t>(i)];
  }
  CHECK(correct > 0.95 * test.count);
}

TEST_CASE("take_subset keeps a fixed seeded subset", "[registry]") {
  LoadOptions options;
  options.synthetic.train_count = 100;
  options.synthetic.height = options.synthetic.width = 4;
  const Dataset d = load_dataset("synthetic", "", Split::train, options);
  const Dataset s = take_subset(d, 10, 5);
  CHECK(s.count == 10);
  CHECK(take_subset(d, 10, 5).images == s.images);
  CHECK(take_subset(d, 10, 6).images != s.images);
  REQUIRE_NOTHROW(validate(s));
  expect_error([&] { take_subset(d, 101, 0); }, {"subset of 101 images requested from 100"});
}

TEST_CASE("split_holdout keeps the train split's tail apart, image for image", "[registry]") {
  LoadOptions options;
  options.synthetic.train_count = 100;
  options.synthetic.height = options.synthetic.width = 4;
  const Dataset d = load_dataset("synthetic", "", Split::train, options);
  const HoldoutSplit s = split_holdout(d, 30);
  REQUIRE(s.train.count == 70);
  REQUIRE(s.holdout.count == 30);
  REQUIRE_NOTHROW(validate(s.train));
  REQUIRE_NOTHROW(validate(s.holdout));
  // Train is rows [0, 70), holdout rows [70, 100), in order: together exactly the split.
  CHECK(std::equal(s.train.images.begin(), s.train.images.end(), d.images.begin()));
  CHECK(std::equal(s.holdout.images.begin(), s.holdout.images.end(), d.image(70)));
  CHECK(std::equal(s.holdout.labels.begin(), s.holdout.labels.end(), d.labels.begin() + 70));
  CHECK(s.holdout.source.find("holdout: last 30") != std::string::npos);
  expect_error([&] { split_holdout(d, 100); }, {"holdout of 100 images needs 1 to 99"});
  expect_error([&] { split_holdout(d, 0); }, {"holdout of 0 images"});
}
