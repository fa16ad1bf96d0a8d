#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_dispatch.h"

namespace vitscale::cpu {
namespace {

constexpr int kNormRanges = 64;  // fixed partition: independent of the thread count
constexpr int kLanes = 8;        // interleaved accumulators inside a range

double sum_squares(const float* g, std::int64_t n) {
  double lane[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += static_cast<double>(g[i + l]) * g[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += static_cast<double>(g[i]) * g[i];
  double total = 0.0;
  for (double x : lane) total += x;
  return total;
}

VITSCALE_CPU_CLONES void adamw_chunk(float* p, const float* grad, float* m, float* v, std::int64_t n, float grad_scale,
                                     float decay_factor, float beta1, float beta2, float step_size, float inv_sqrt_bc2,
                                     float eps) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
    p[i] = p[i] * decay_factor - step_size * (mi / denom);
  }
}

}  // namespace

double grad_norm_squared(const float* grads, std::int64_t n) {
  double partial[kNormRanges];
#pragma omp parallel for schedule(static) if (n >= 1 << 16)
  for (int r = 0; r < kNormRanges; ++r) {
    const std::int64_t begin = n * r / kNormRanges, end = n * (r + 1) / kNormRanges;
    partial[r] = sum_squares(grads + begin, end - begin);
  }
  double total = 0.0;
  for (double x : partial) total += x;
  return total;
}

float clip_scale(double norm_sq, float max_norm) {
  if (max_norm <= 0.f) return 1.f;
  const double norm = std::sqrt(norm_sq);
  return norm > max_norm ? static_cast<float>(max_norm / norm) : 1.f;
}

void adamw_update(float* params, const float* grads, float* m, float* v, std::int64_t n, const AdamWScalars& s) {
  // Scalars in double, as LibTorch computes them, then rounded once.
  const double bc1 = 1.0 - std::pow(static_cast<double>(s.beta1), s.step);
  const double bc2 = 1.0 - std::pow(static_cast<double>(s.beta2), s.step);
  const auto step_size = static_cast<float>(static_cast<double>(s.lr) / bc1);
  const auto inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const auto decay_factor = static_cast<float>(1.0 - static_cast<double>(s.lr) * s.weight_decay);
  constexpr std::int64_t kChunk = 1 << 14;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kChunk;
    adamw_chunk(params + begin, grads + begin, m + begin, v + begin, std::min(kChunk, n - begin), s.grad_scale,
                decay_factor, s.beta1, s.beta2, step_size, inv_sqrt_bc2, s.eps);
  }
}

}  // namespace vitscale::cpu
