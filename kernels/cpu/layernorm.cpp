#include "kernels/cpu/layernorm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_dispatch.h"

namespace vitscale::cpu {
namespace {

constexpr std::int64_t kRowsPerItem = 16;   // rows per parallel work item
constexpr std::int64_t kParamColumns = 32;  // columns one thread owns for d_gamma / d_beta
constexpr std::int64_t kParallelElems = 1 << 15;

// Normalises rows [0, rows) of x into out and saves their statistics.
VITSCALE_CPU_CLONES void normalise_rows(float* out, float* mean, float* rstd, const float* x, const float* gamma,
                                        const float* beta, std::int64_t rows, std::int64_t D, float eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (std::int64_t i = 0; i < D; ++i) sum += xr[i];
    const double mu = sum / static_cast<double>(D);
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (std::int64_t i = 0; i < D; ++i) {
      const double c = xr[i] - mu;
      sq += c * c;
    }
    const double rs = 1.0 / std::sqrt(sq / static_cast<double>(D) + eps);
    const float m = static_cast<float>(mu), s = static_cast<float>(rs);
    float* o = out + r * D;
#pragma omp simd
    for (std::int64_t i = 0; i < D; ++i) o[i] = (xr[i] - m) * s * gamma[i] + beta[i];
    mean[r] = m;
    rstd[r] = s;
  }
}

VITSCALE_CPU_CLONES void add_rows(float* sum, const float* a, const float* b, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
}

VITSCALE_CPU_CLONES void backward_rows(float* d_in, const float* d_out, const float* x, const float* mean,
                                       const float* rstd, const float* gamma, std::int64_t rows, std::int64_t D) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* dy = d_out + r * D;
    const float* xr = x + r * D;
    const float m = mean[r], s = rstd[r];
    // d x̂ = dy·γ; dx = rstd·(d x̂ − mean(d x̂) − x̂·mean(d x̂·x̂)).
    double sum_dxhat = 0.0, sum_dxhat_xhat = 0.0;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
    for (std::int64_t i = 0; i < D; ++i) {
      const float dxhat = dy[i] * gamma[i];
      const float xhat = (xr[i] - m) * s;
      sum_dxhat += dxhat;
      sum_dxhat_xhat += static_cast<double>(dxhat) * xhat;
    }
    const float mean_dxhat = static_cast<float>(sum_dxhat / static_cast<double>(D));
    const float mean_dxhat_xhat = static_cast<float>(sum_dxhat_xhat / static_cast<double>(D));
    float* dx = d_in + r * D;
#pragma omp simd
    for (std::int64_t i = 0; i < D; ++i) {
      const float xhat = (xr[i] - m) * s;
      dx[i] += s * (dy[i] * gamma[i] - mean_dxhat - xhat * mean_dxhat_xhat);
    }
  }
}

// d_gamma, d_beta for columns [c0, c0 + width), summing rows 0..R-1 in order.
VITSCALE_CPU_CLONES void param_grad_columns(float* d_gamma, float* d_beta, const float* d_out, const float* x,
                                            const float* mean, const float* rstd, std::int64_t R, std::int64_t D,
                                            std::int64_t c0, std::int64_t width) {
  double acc_gamma[kParamColumns] = {};
  double acc_beta[kParamColumns] = {};
  for (std::int64_t r = 0; r < R; ++r) {
    const float* dy = d_out + r * D + c0;
    const float* xr = x + r * D + c0;
    const float m = mean[r], s = rstd[r];
#pragma omp simd
    for (std::int64_t c = 0; c < width; ++c) {
      acc_gamma[c] += static_cast<double>(dy[c]) * ((xr[c] - m) * s);
      acc_beta[c] += dy[c];
    }
  }
  for (std::int64_t c = 0; c < width; ++c) {
    d_gamma[c0 + c] = static_cast<float>(d_gamma[c0 + c] + acc_gamma[c]);
    d_beta[c0 + c] = static_cast<float>(d_beta[c0 + c] + acc_beta[c]);
  }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* in, const float* gamma, const float* beta,
                       std::int64_t R, std::int64_t D, float eps) {
  const std::int64_t items = (R + kRowsPerItem - 1) / kRowsPerItem;
#pragma omp parallel for schedule(static) if (R * D >= kParallelElems)
  for (std::int64_t it = 0; it < items; ++it) {
    const std::int64_t r0 = it * kRowsPerItem, rows = std::min(kRowsPerItem, R - r0);
    normalise_rows(out + r0 * D, mean + r0, rstd + r0, in + r0 * D, gamma, beta, rows, D, eps);
  }
}

void add_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                           const float* gamma, const float* beta, std::int64_t R, std::int64_t D, float eps) {
  const std::int64_t items = (R + kRowsPerItem - 1) / kRowsPerItem;
#pragma omp parallel for schedule(static) if (R * D >= kParallelElems)
  for (std::int64_t it = 0; it < items; ++it) {
    const std::int64_t r0 = it * kRowsPerItem, rows = std::min(kRowsPerItem, R - r0);
    // The add and the normalisation of a block of rows back to back: the sum is
    // still in L1 when it is normalised.
    add_rows(sum + r0 * D, a + r0 * D, b + r0 * D, rows * D);
    normalise_rows(out + r0 * D, mean + r0, rstd + r0, sum + r0 * D, gamma, beta, rows, D, eps);
  }
}

void layernorm_backward(float* d_in, float* d_gamma, float* d_beta, const float* d_out, const float* in,
                        const float* mean, const float* rstd, const float* gamma, std::int64_t R, std::int64_t D) {
  const std::int64_t items = (R + kRowsPerItem - 1) / kRowsPerItem;
  const std::int64_t column_blocks = (D + kParamColumns - 1) / kParamColumns;
  const bool parallel = R * D >= kParallelElems;
#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static) nowait
    for (std::int64_t blk = 0; blk < column_blocks; ++blk) {
      const std::int64_t c0 = blk * kParamColumns;
      param_grad_columns(d_gamma, d_beta, d_out, in, mean, rstd, R, D, c0, std::min(kParamColumns, D - c0));
    }
#pragma omp for schedule(static)
    for (std::int64_t it = 0; it < items; ++it) {
      const std::int64_t r0 = it * kRowsPerItem, rows = std::min(kRowsPerItem, R - r0);
      backward_rows(d_in + r0 * D, d_out + r0 * D, in + r0 * D, mean + r0, rstd + r0, gamma, rows, D);
    }
  }
}

}  // namespace vitscale::cpu
