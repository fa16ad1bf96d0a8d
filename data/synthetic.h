// synthetic.h — a seeded, learnable dataset of any shape, for tests and benchmarks.
//
// Class k owns, per channel, a smooth pattern: a 2-D sinusoid whose integer
// frequencies, phase and amplitude are drawn from (seed, k, channel). An image
// of class k is that pattern plus a per-image brightness offset and per-pixel
// uniform noise, rounded and clamped to uint8. A model (even a linear one)
// learns it; the noise keeps it from being trivial. The train and test splits
// share the patterns and differ in their noise. Everything is a pure function
// of the spec, so two processes (two ranks) generate identical bytes.
#pragma once

#include <cstdint>

#include "data/dataset.h"

namespace vitscale::data {

struct SyntheticSpec {
  std::int64_t train_count = 50000;
  std::int64_t test_count = 10000;
  int channels = 3;      // 1..3
  int height = 32;
  int width = 32;
  int num_classes = 10;
  std::uint64_t seed = 0;
  float noise = 48.f;    // per-pixel uniform noise amplitude, in pixel units (0..255)
};

// Images (N, C, H, W) uint8; labels drawn uniformly per image. Normalisation
// mean 0.5 and std 0.25 for every channel (the patterns are centred on 128).
Dataset make_synthetic(const SyntheticSpec& spec, Split split);

}  // namespace vitscale::data
