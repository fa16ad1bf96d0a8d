// cpu_test_util.h — helpers for the CPU backend tests: fresh random tensors,
// double-precision inner products, and the directional finite-difference
// gradient check every backward op is held to.
//
// Inputs are drawn from a seed printed on failure (CAPTURE), fresh on every run
// unless VITSCALE_TEST_SEED is set, so the tests can fail on any input, not
// only on one lucky one.
#pragma once

#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace vitscale::test {

inline std::uint64_t fresh_seed() {
  if (const char* s = std::getenv("VITSCALE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(engine_); }
  float normal() { return std::normal_distribution<float>(0.f, 1.f)(engine_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine_); }
  std::vector<float> normals(std::size_t n, float scale = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = scale * normal();
    return v;
  }
  std::vector<float> uniforms(std::size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
  // Rows of a random distribution each (soft targets).
  std::vector<float> distributions(std::size_t rows, std::size_t k) {
    std::vector<float> v(rows * k);
    for (std::size_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (std::size_t i = 0; i < k; ++i) sum += v[r * k + i] = uniform(0.f, 1.f) * uniform(0.f, 1.f);
      for (std::size_t i = 0; i < k; ++i) v[r * k + i] = static_cast<float>(v[r * k + i] / sum);
    }
    return v;
  }

 private:
  std::mt19937_64 engine_;
};

// Restores OpenMP's thread count when a test changes it.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(omp_get_max_threads()) {}
  ~ThreadCountGuard() { omp_set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

inline TensorView view(std::vector<float>& v, std::initializer_list<std::int64_t> dims) {
  TensorView t(v.data(), DType::f32, dims);
  REQUIRE(static_cast<std::size_t>(t.numel()) == v.size());
  return t;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

inline double norm(const std::vector<double>& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

// ‖a − b‖ / ‖b‖ of a float result against a double reference.
inline double relative_error(const std::vector<float>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Checks the analytic gradient `grad` of loss() with respect to `x` along a
// random direction u. Central differences at steps h and h/2 are combined
// (Richardson) so that their O(h³) terms cancel; a step this large keeps the
// float rounding inside the op small against the difference. The perturbation
// actually applied (after float rounding) is what the analytic side uses, so
// only the loss's own rounding and O(h⁵) remain. `loss` must read x. Returns
// |fd − analytic| / (|analytic| + ‖g∘δ‖) and restores x.
inline double directional_error(std::vector<float>& x, const std::vector<float>& grad,
                                const std::function<double()>& loss, Rng& rng, float h) {
  REQUIRE(x.size() == grad.size());
  const std::vector<float> x0 = x;
  const std::vector<float> u = rng.normals(x.size());
  struct Difference {
    double fd, analytic, scale;  // scale: Σ (g·δ)²
  };
  auto central = [&](float step) {
    std::vector<float> plus(x.size()), minus(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      plus[i] = x0[i] + step * u[i];
      minus[i] = x0[i] - step * u[i];
    }
    x = plus;
    const double l_plus = loss();
    x = minus;
    const double l_minus = loss();
    x = x0;
    Difference d{l_plus - l_minus, 0.0, 0.0};
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double delta = static_cast<double>(plus[i]) - minus[i];
      d.analytic += grad[i] * delta;
      d.scale += (grad[i] * delta) * (grad[i] * delta);
    }
    return d;
  };
  const Difference full = central(h), half = central(h / 2);
  // fd − analytic = k·step³ + O(step⁵): 8·(half) − (full) cancels k.
  const double error = (8 * (half.fd - half.analytic) - (full.fd - full.analytic)) / 7;
  // ‖g∘δ‖ is the size ⟨g, δ⟩ has for a random direction: adding it keeps an
  // accidentally cancelling direction from dividing by ~0.
  return std::fabs(error) / (std::fabs(half.analytic) + std::sqrt(half.scale));
}

// Worst of `trials` random directions.
inline double worst_directional_error(std::vector<float>& x, const std::vector<float>& grad,
                                      const std::function<double()>& loss, Rng& rng, float h, int trials = 3) {
  double worst = 0;
  for (int t = 0; t < trials; ++t) worst = std::max(worst, directional_error(x, grad, loss, rng, h));
  return worst;
}

}  // namespace vitscale::test
