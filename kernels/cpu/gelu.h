// gelu.h — exact (erf) GELU forward and backward: gelu(x) = x·Φ(x).
//
// Φ is the standard normal CDF. std::erf per element costs ~20 ns and does not
// vectorise, which made GELU the most expensive op of a small ViT step; so Φ is
// computed with its own branch-free float code that GCC vectorises:
//   Φ(x) = ½·erfc(|x|/√2) for x < 0, 1 − ½·erfc(|x|/√2) for x ≥ 0,
//   erfc(z) = exp(−z²)·g(t), t = 1/(1 + z/2), g a degree-10 polynomial (in t
//   mapped onto [−1, 1]) fitted for this project by least squares at Chebyshev
//   nodes to erfc(z)·exp(z²) on z ∈ [0, 9.3]: relative error 5e-9 in exact
//   arithmetic.
// Working from erfc keeps the relative error small on the negative tail too.
// Measured against double precision for |x| ≤ 5: absolute error ≤ 4e-7,
// relative ≤ 2e-6 (the worst on the far negative tail, from rounding z²);
// tests/cpu checks it over [−10, 10].
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// out = gelu(in).
void gelu_forward(float* out,       // (n)
                  const float* in,  // (n)
                  std::int64_t n);

// d_in = d_out ⊙ gelu'(pre), gelu'(x) = Φ(x) + x·φ(x). d_in may alias d_out.
void gelu_backward(float* d_in,         // (n)
                   const float* d_out,  // (n)
                   const float* pre,    // (n)
                   std::int64_t n);

// gelu_forward and gelu_backward on the calling thread only (for kernels that
// call them on their own blocks from inside a parallel region). Per element
// the same bits.
void gelu_forward_on_this_thread(float* out, const float* in, std::int64_t n);
void gelu_backward_on_this_thread(float* d_in, const float* d_out, const float* pre, std::int64_t n);

// The same arithmetic for one value (tests and other kernels' references).
float gelu_value(float x);
float gelu_derivative(float x);

}  // namespace vitscale::cpu
