// rng.h — a small, portable, seeded random generator.
//
// std::normal_distribution is implementation-defined, so initialisation would
// differ between standard libraries; this generator (splitmix64 stream +
// Box–Muller) gives the same bits everywhere for the same seed.
#pragma once

#include <cmath>
#include <cstdint>

namespace vitscale {

// splitmix64's finaliser: a strong 64-bit mix, also usable as a hash of a counter.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(mix64(seed)) {}
  std::uint64_t next_u64() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double normal() {
    // Box–Muller; u1 in (0, 1] so log is finite.
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  }
  // Normal(0, std) resampled until inside [lo, hi] (timm's trunc_normal_ bounds are absolute).
  double truncated_normal(double std, double lo, double hi) {
    for (;;) {
      const double x = normal() * std;
      if (x >= lo && x <= hi) return x;
    }
  }
  std::uint64_t state() const { return state_; }
  void set_state(std::uint64_t s) { state_ = s; }

 private:
  std::uint64_t state_;
};

}  // namespace vitscale
