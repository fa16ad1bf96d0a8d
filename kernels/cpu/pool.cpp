#include "kernels/cpu/pool.h"

#include <algorithm>

namespace vitscale::cpu {
namespace {
constexpr std::int64_t kSumColumns = 64;  // double accumulators per pass
}

void pool_forward(float* pooled, const float* x, std::int64_t B, std::int64_t T, std::int64_t D, PoolKind kind) {
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < B; ++b) {
    const float* xb = x + b * T * D;
    float* out = pooled + b * D;
    if (kind == PoolKind::first_token) {
      std::copy(xb, xb + D, out);
      continue;
    }
    for (std::int64_t c0 = 0; c0 < D; c0 += kSumColumns) {
      const std::int64_t width = std::min(kSumColumns, D - c0);
      double acc[kSumColumns] = {};
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t c = 0; c < width; ++c) acc[c] += xb[t * D + c0 + c];
      for (std::int64_t c = 0; c < width; ++c) out[c0 + c] = static_cast<float>(acc[c] / static_cast<double>(T));
    }
  }
}

void pool_backward(float* d_x, const float* d_pooled, std::int64_t B, std::int64_t T, std::int64_t D, PoolKind kind) {
  const float inv_t = static_cast<float>(1.0 / static_cast<double>(T));
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < B; ++b) {
    const float* g = d_pooled + b * D;
    float* dx = d_x + b * T * D;
    if (kind == PoolKind::first_token) {
      std::copy(g, g + D, dx);
      std::fill(dx + D, dx + T * D, 0.f);
    } else {
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t c = 0; c < D; ++c) dx[t * D + c] = g[c] * inv_t;
    }
  }
}

}  // namespace vitscale::cpu
