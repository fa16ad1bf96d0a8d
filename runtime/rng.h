// rng.h — the one seeded random generator of the project (model init, data
// pipeline, tests).
//
// splitmix64 (Steele, Lea, Flood 2014) is both the hash and the generator:
// tiny, fast, and counter-friendly, so data/ can derive an independent stream
// per (seed, epoch, sample) with no state carried between samples.
// std::normal_distribution is implementation-defined, so the distributions are
// written here: the same seed gives the same bits with any standard library.
#pragma once

#include <cmath>
#include <cstdint>

namespace vitscale {

constexpr std::uint64_t kSplitmixGamma = 0x9E3779B97F4A7C15ull;

// splitmix64's output function: a strong 64-bit bijective mix.
constexpr std::uint64_t splitmix_finalize(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A hash of a counter or seed (one splitmix64 step from x).
constexpr std::uint64_t mix64(std::uint64_t x) { return splitmix_finalize(x + kSplitmixGamma); }

class Rng {
 public:
  // A generator whose stream is keyed by `key` (data/ passes hashed counters).
  explicit Rng(std::uint64_t key) : state_(key) {}
  // The model-initialisation stream for a user seed: its first number is
  // mix64(mix64(seed) + gamma). This is the stream every recorded run and
  // checkpoint was initialised with, so a seed keeps giving the same weights.
  static Rng from_seed(std::uint64_t seed) { return Rng(mix64(seed) + kSplitmixGamma); }

  std::uint64_t next_u64() {
    state_ += kSplitmixGamma;
    return splitmix_finalize(state_);
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

  // Standard normal (Box–Muller; one of the pair is discarded to stay stateless).
  double normal() {
    const double u1 = 1.0 - uniform_double();  // (0, 1]: log is finite
    const double u2 = uniform_double();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Normal(0, std) resampled until inside [lo, hi] (timm's trunc_normal_ bounds are absolute).
  double truncated_normal(double std, double lo, double hi) {
    for (;;) {
      const double x = normal() * std;
      if (x >= lo && x <= hi) return x;
    }
  }
  // Gamma(shape, 1) by Marsaglia–Tsang; shape < 1 through the U^(1/shape) boost.
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

  std::uint64_t state() const { return state_; }
  void set_state(std::uint64_t s) { state_ = s; }

 private:
  std::uint64_t state_;
};

}  // namespace vitscale
