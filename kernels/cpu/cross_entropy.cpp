#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace vitscale::cpu {

void cross_entropy_forward_backward(float* losses, float* d_logits, const float* logits, const float* targets,
                                    std::int64_t B, std::int64_t K, float grad_scale) {
#pragma omp parallel for schedule(static) if (B * K >= 4096)
  for (std::int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * K;
    const float* t = targets + b * K;
    const double z_max = *std::max_element(z, z + K);
    double sum_exp = 0.0;
    for (std::int64_t k = 0; k < K; ++k) sum_exp += std::exp(z[k] - z_max);
    const double lse = z_max + std::log(sum_exp);
    // −Σ t (z − lse), written so that zero targets contribute exactly nothing.
    double loss = 0.0;
    for (std::int64_t k = 0; k < K; ++k) loss += static_cast<double>(t[k]) * (lse - z[k]);
    losses[b] = static_cast<float>(loss);
    if (d_logits) {
      float* d = d_logits + b * K;
      for (std::int64_t k = 0; k < K; ++k) d[k] = static_cast<float>((std::exp(z[k] - lse) - t[k]) * grad_scale);
    }
  }
}

}  // namespace vitscale::cpu
