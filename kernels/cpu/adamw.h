// adamw.h — AdamW with decoupled weight decay, and the global gradient norm.
//
// The update follows torch.optim.AdamW (and LibTorch's torch::optim::AdamW)
// operation by operation, so that the two agree to rounding:
//   p ← p·(1 − lr·wd)                        (decay segments only)
//   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
// where g = grad·grad_scale (the clipping factor; grads themselves are left
// untouched). The squared norm is a sum over a fixed partition of the buffer
// (64 ranges, each summed in 8 interleaved double lanes, then the partials in
// order): the same bits for any thread count and any SIMD width.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

struct AdamWScalars {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;  // already 0 for a no-decay segment
  int step = 1;              // 1-based, for bias correction
  float grad_scale = 1.f;    // clipping factor applied to every gradient
};

// Σ grads², deterministic.
double grad_norm_squared(const float* grads,  // (n)
                         std::int64_t n);

// The clipping factor min(1, max_norm / √norm_sq); 1 when max_norm ≤ 0.
float clip_scale(double norm_sq, float max_norm);

// One AdamW step over a contiguous run of parameters.
void adamw_update(float* params,       // (n)
                  const float* grads,  // (n)
                  float* m,            // (n) first moment
                  float* v,            // (n) second moment
                  std::int64_t n, const AdamWScalars& s);

}  // namespace vitscale::cpu
