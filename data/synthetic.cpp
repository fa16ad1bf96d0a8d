// synthetic.cpp — class-dependent sinusoid patterns plus seeded noise.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/rng.h"

namespace vitscale::data {

Dataset make_synthetic(const SyntheticSpec& spec, Split split) {
  const std::int64_t n = split == Split::train ? spec.train_count : spec.test_count;
  if (n < 1 || spec.channels < 1 || spec.channels > 3 || spec.height < 1 || spec.width < 1 ||
      spec.num_classes < 1 || spec.noise < 0.f)
    throw std::runtime_error("synthetic: invalid spec: " + std::to_string(n) + " images of " +
                             std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
                             std::to_string(spec.width) + ", " + std::to_string(spec.num_classes) +
                             " classes, noise " + std::to_string(spec.noise));
  const int C = spec.channels, H = spec.height, W = spec.width, K = spec.num_classes;
  const std::size_t image_bytes = static_cast<std::size_t>(C) * H * W;

  // One pattern per class: (K, C, H, W) float, centred on 128.
  std::vector<float> patterns(static_cast<std::size_t>(K) * image_bytes);
  constexpr double kTwoPi = 6.283185307179586;
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c) {
      Rng rng(derive_key(spec.seed, RngStream::synthetic, 0x9a77e2u, static_cast<std::uint64_t>(k * 3 + c)));
      const double fx = static_cast<double>(rng.between(-3, 3)), fy = static_cast<double>(rng.between(1, 3));
      const double phase = kTwoPi * rng.uniform_double(), amplitude = 40.0 + 50.0 * rng.uniform_double();
      float* p = patterns.data() + (static_cast<std::size_t>(k) * C + c) * H * W;  // (H, W)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          p[y * W + x] = static_cast<float>(128.0 + amplitude * std::sin(kTwoPi * (fx * x / W + fy * y / H) + phase));
    }

  Dataset d;
  d.name = "synthetic";
  d.source = "generated (seed " + std::to_string(spec.seed) + ")";
  d.split = split;
  d.count = n;
  d.channels = C;
  d.height = H;
  d.width = W;
  d.num_classes = K;
  d.normalization.channels = C;
  for (int c = 0; c < 3; ++c) d.normalization.mean[c] = 0.5f, d.normalization.std[c] = 0.25f;
  d.images.resize(static_cast<std::size_t>(n) * image_bytes);  // (N, C, H, W)
  d.labels.resize(static_cast<std::size_t>(n));
  const std::uint64_t split_code = split == Split::train ? 1 : 2;
  for (std::int64_t i = 0; i < n; ++i) {
    Rng rng(derive_key(spec.seed, RngStream::synthetic, split_code, static_cast<std::uint64_t>(i)));
    const int label = static_cast<int>(rng.below(static_cast<std::uint64_t>(K)));
    d.labels[static_cast<std::size_t>(i)] = label;
    const float offset = 32.f * (rng.uniform() - 0.5f);
    const float* pattern = patterns.data() + static_cast<std::size_t>(label) * image_bytes;
    std::uint8_t* out = d.images.data() + static_cast<std::size_t>(i) * image_bytes;
    std::uint64_t noise_bits = 0;
    for (std::size_t j = 0; j < image_bytes; ++j) {
      if (j % 8 == 0) noise_bits = rng.next_u64();
      const float u = static_cast<float>((noise_bits >> (8 * (j % 8))) & 0xff) * (2.f / 255.f) - 1.f;  // [-1, 1]
      const float v = pattern[j] + offset + spec.noise * u;
      out[j] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0l, 255l));
    }
  }
  d.class_names.reserve(static_cast<std::size_t>(K));
  for (int k = 0; k < K; ++k) d.class_names.push_back("class" + std::to_string(k));
  return d;
}

}  // namespace vitscale::data
