// rng.h — counter-based random numbers for the data pipeline.
//
// Determinism contract: every random choice the pipeline makes (the epoch's
// shuffle, a sample's crop offset and flip, its RandAugment ops, a batch's
// mixup lambda) comes from a Rng whose seed is a hash of (seed, stream, epoch,
// position). No state is carried from one sample to the next, so the bytes of
// batch k depend only on (seed, epoch, rank, k) and never on which worker
// thread made them or in what order. splitmix64 (Steele, Lea, Flood 2014) is
// the hash and the generator: tiny, fast, and good enough for augmentation.
//
// We never use <random>'s distributions: their output is implementation-defined,
// so the same seed could give different batches with another standard library.
#pragma once

#include <cmath>
#include <cstdint>

namespace vitscale::data {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Distinct streams so that, e.g., the shuffle and the crops never share numbers.
enum class RngStream : std::uint64_t { shuffle = 1, sample = 2, batch_mix = 3, synthetic = 4, subset = 5 };

// The seed of one counter-based stream: hash(seed, stream, a, b).
constexpr std::uint64_t derive_key(std::uint64_t seed, RngStream stream, std::uint64_t a, std::uint64_t b = 0) {
  std::uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<std::uint64_t>(stream));
  h = splitmix64(h ^ a);
  return splitmix64(h ^ b);
}

class Rng {
 public:
  explicit Rng(std::uint64_t key) : state_(key) {}

  std::uint64_t next_u64() {
    state_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits (exactly representable as float).
  float uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }
  // Uniform in [0, 1) with 53 random bits.
  double uniform_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (multiply-shift; bias below n / 2^64).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }
  // Uniform integer in [lo, hi] inclusive.
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo + 1)));
  }
  bool coin(float p_true) { return uniform() < p_true; }

  // Standard normal (Box-Muller; one of the pair is discarded to stay stateless).
  double normal() {
    const double u1 = 1.0 - uniform_double();  // (0, 1]
    const double u2 = uniform_double();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Gamma(shape, 1) by Marsaglia-Tsang; shape < 1 through the U^(1/shape) boost.
  double gamma(double shape) {
    if (shape < 1.0) return gamma(shape + 1.0) * std::pow(1.0 - uniform_double(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x = normal(), v = 1.0 + c * x;
      if (v <= 0.0) continue;
      v = v * v * v;
      const double u = 1.0 - uniform_double();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }
  // Beta(a, b) as Ga / (Ga + Gb).
  double beta(double a, double b) {
    const double x = gamma(a), y = gamma(b);
    return (x + y) > 0.0 ? x / (x + y) : 0.5;
  }

 private:
  std::uint64_t state_;
};

}  // namespace vitscale::data
