#include "kernels/cpu/gelu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/cpu_dispatch.h"
#include "kernels/cpu/vector_math.h"

namespace vitscale::cpu {
namespace {

constexpr std::int64_t kChunk = 4096;  // elements per parallel work item

struct CdfParts {
  float cdf;    // Φ(x)
  float gauss;  // exp(-x²/2), 0 beyond the fitted range
};

inline CdfParts normal_cdf(float x) {
  constexpr float kInvSqrt2 = 0.707106781186547524f;
  constexpr float kMaxZ = 9.3f;  // erfc(9.3) < 1e-38: Φ is 0 or 1 in float beyond it
  // s = 2(t − t_min)/(1 − t_min) − 1 maps t ∈ [1/(1 + 9.3/2), 1] onto [−1, 1].
  constexpr float kTMin = 0.176991150442477876f;
  constexpr float kSScale = 2.f / (1.f - kTMin);
  constexpr float kSShift = (1.f + kTMin) / (1.f - kTMin);
  const float z_raw = std::fabs(x) * kInvSqrt2;
  const float z = std::min(z_raw, kMaxZ);
  const float t = 1.f / (1.f + 0.5f * z);
  const float s = t * kSScale - kSShift;
  float g = 4.341247221e-6f;
  g = g * s - 1.549238617e-5f;
  g = g * s - 3.283093236e-5f;
  g = g * s + 2.220905919e-4f;
  g = g * s + 1.009732402e-4f;
  g = g * s - 2.7400465e-3f;
  g = g * s - 1.223100931e-3f;
  g = g * s + 4.424504381e-2f;
  g = g * s + 1.92296731e-1f;
  g = g * s + 4.281280272e-1f;
  g = g * s + 3.390142609e-1f;
  const float e = exp_nonpositive(-(z * z));
  const bool in_range = z_raw < kMaxZ;
  const float half_erfc = in_range ? 0.5f * e * g : 0.f;
  return {x >= 0.f ? 1.f - half_erfc : half_erfc, in_range ? e : 0.f};
}

inline float gelu_derivative_inline(float x) {
  constexpr float kInvSqrt2Pi = 0.398942280401432678f;
  const CdfParts c = normal_cdf(x);
  return c.cdf + x * c.gauss * kInvSqrt2Pi;
}

VITSCALE_CPU_CLONES void gelu_forward_chunk(float* out, const float* in, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) out[i] = in[i] * normal_cdf(in[i]).cdf;
}

// No __restrict: d_in may alias d_out (each element is read before it is written).
VITSCALE_CPU_CLONES void gelu_backward_chunk(float* d_in, const float* d_out, const float* pre, std::int64_t n) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) d_in[i] = d_out[i] * gelu_derivative_inline(pre[i]);
}

}  // namespace

float gelu_value(float x) { return x * normal_cdf(x).cdf; }
float gelu_derivative(float x) { return gelu_derivative_inline(x); }

void gelu_forward(float* out, const float* in, std::int64_t n) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kChunk;
    gelu_forward_chunk(out + begin, in + begin, std::min(kChunk, n - begin));
  }
}

void gelu_backward(float* d_in, const float* d_out, const float* pre, std::int64_t n) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kChunk;
    gelu_backward_chunk(d_in + begin, d_out + begin, pre + begin, std::min(kChunk, n - begin));
  }
}

void gelu_forward_on_this_thread(float* out, const float* in, std::int64_t n) { gelu_forward_chunk(out, in, n); }

void gelu_backward_on_this_thread(float* d_in, const float* d_out, const float* pre, std::int64_t n) {
  gelu_backward_chunk(d_in, d_out, pre, n);
}

}  // namespace vitscale::cpu
