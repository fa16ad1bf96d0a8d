#include "kernels/cpu/embed.h"

#include <algorithm>

namespace vitscale::cpu {
namespace {

constexpr std::int64_t kSumColumns = 64;  // double accumulators per pass

// dst (D) += Σ_{b < count} src[b · stride + (0..D)], summed in b order in double.
void accumulate_strided_rows(float* dst, const float* src, std::int64_t stride, std::int64_t count, std::int64_t D) {
  for (std::int64_t c0 = 0; c0 < D; c0 += kSumColumns) {
    const std::int64_t width = std::min(kSumColumns, D - c0);
    double acc[kSumColumns] = {};
    for (std::int64_t b = 0; b < count; ++b) {
      const float* row = src + b * stride + c0;
      for (std::int64_t c = 0; c < width; ++c) acc[c] += row[c];
    }
    for (std::int64_t c = 0; c < width; ++c) dst[c0 + c] = static_cast<float>(dst[c0 + c] + acc[c]);
  }
}

}  // namespace

void embed_forward(float* tokens, const float* patch_emb, const float* cls, const float* pos, std::int64_t B,
                   std::int64_t Np, std::int64_t D) {
  const std::int64_t lead = cls ? 1 : 0;
  const std::int64_t T = Np + lead;
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < B; ++b) {
    float* out = tokens + b * T * D;
    if (cls) {
      for (std::int64_t i = 0; i < D; ++i) out[i] = cls[i] + pos[i];
    }
    const float* in = patch_emb + b * Np * D;
    const float* pos_patches = pos + lead * D;
    float* out_patches = out + lead * D;
    for (std::int64_t i = 0; i < Np * D; ++i) out_patches[i] = in[i] + pos_patches[i];
  }
}

void embed_backward(float* d_patch_emb, float* d_cls, float* d_pos, const float* d_tokens, std::int64_t B,
                    std::int64_t Np, std::int64_t D) {
  const std::int64_t lead = d_cls ? 1 : 0;
  const std::int64_t T = Np + lead;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (std::int64_t b = 0; b < B; ++b) {
      const float* src = d_tokens + (b * T + lead) * D;
      std::copy(src, src + Np * D, d_patch_emb + b * Np * D);
    }
    // One position row per work item; the class token (row 0) also feeds d_cls.
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < T + lead; ++t) {
      if (t < T) {
        accumulate_strided_rows(d_pos + t * D, d_tokens + t * D, T * D, B, D);
      } else {
        accumulate_strided_rows(d_cls, d_tokens, T * D, B, D);
      }
    }
  }
}

}  // namespace vitscale::cpu
