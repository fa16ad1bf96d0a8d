// dataset.h — an image classification dataset held in memory, and its normalisation.
//
// Every dataset (CIFAR-10, CIFAR-100, Fashion-MNIST, synthetic, an image folder) is decoded once
// into this one shape: uint8 pixels laid out (N, C, H, W), one int32 label per
// image, and the per-channel mean/std of its training split. CIFAR-10 is 150 MB
// as uint8, so holding it whole is cheaper than any streaming scheme; the loader
// crops, flips and mixes straight out of `images`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vitscale::data {

enum class Split { train, test };
const char* split_name(Split split);  // "train" / "test"

// Per-channel normalisation: x_normalised = (x / 255 - mean[c]) / std[c].
// Only the first `channels` entries are meaningful (1 for Fashion-MNIST, 3 for CIFAR).
struct Normalization {
  int channels = 3;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};
};

// Train-set statistics of the real datasets (the values every paper uses).
Normalization cifar10_normalization();        // mean 0.4914 0.4822 0.4465, std 0.2470 0.2435 0.2616
Normalization cifar100_normalization();       // mean 0.5071 0.4865 0.4409, std 0.2673 0.2564 0.2762
Normalization fashion_mnist_normalization();  // mean 0.2860, std 0.3530

struct Dataset {
  std::string name;    // "cifar10", "cifar100", "cifar100-coarse", "fashion-mnist", "synthetic", "imagefolder"
  std::string source;  // the directory (or "generated") it came from, for logs
  Split split = Split::train;
  std::int64_t count = 0;                // N
  int channels = 0;                      // C
  int height = 0;                        // H
  int width = 0;                         // W
  int num_classes = 0;                   // K; every label is in [0, K)
  std::vector<std::uint8_t> images;      // (N, C, H, W) uint8
  std::vector<std::int32_t> labels;      // (N) in [0, K)
  std::vector<std::string> class_names;  // (K), may be empty
  Normalization normalization;
  std::vector<std::string> notes;  // lines for the start-up log: skipped files, empty classes (imagefolder)

  std::size_t image_bytes() const { return static_cast<std::size_t>(channels) * height * width; }
  const std::uint8_t* image(std::int64_t i) const {
    return images.data() + static_cast<std::size_t>(i) * image_bytes();
  }
  std::string describe() const;  // "cifar10/train: 50000 x 3x32x32, 10 classes, from ./data/cifar-10-batches-bin"
};

// Throws std::runtime_error naming the dataset when sizes and labels disagree
// (images.size() != N*C*H*W, labels.size() != N, a label outside [0, K)).
void validate(const Dataset& dataset);

// A fixed, seeded random subset of `count` images (order kept ascending), for
// weak-scaling runs that give each rank a fraction of the data.
Dataset take_subset(const Dataset& dataset, std::int64_t count, std::uint64_t seed);

// The first count - holdout images (for training) and the last `holdout` (to
// evaluate on), so a recipe can be chosen without reading the test split. The
// cut is by position, not random: Fashion-MNIST's and CIFAR's train files are
// already shuffled, and a fixed tail is the same set for every seed and run.
struct HoldoutSplit {
  Dataset train;    // images [0, count - holdout)
  Dataset holdout;  // images [count - holdout, count)
};
HoldoutSplit split_holdout(const Dataset& dataset, std::int64_t holdout);

}  // namespace vitscale::data
