// vector_math.h — branch-free float exp for the kernels' inner loops.
//
// std::exp neither inlines nor vectorises; softmax (attention, millions of
// scores per step) and GELU's Φ need exp of a non-positive argument in loops
// that GCC should vectorise. This one is accurate to ~2 ulp on [-87, 0].
// Internal to kernels/cpu (included by .cpp files only).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace vitscale::cpu {

// exp(y) for y ≤ 0 (0 below -87, where float exp underflows anyway):
// y = k·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2, so k·ln2 is exact),
// eʳ by its degree-7 Taylor polynomial (truncation error 6e-9), 2ᵏ built
// directly in the exponent bits.
inline float exp_nonpositive(float y) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRoundMagic = 12582912.f;  // 1.5·2²³: adding it rounds to an integer
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kMinArg = -87.f;
  const float yc = std::max(y, kMinArg);
  const float k = (yc * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (yc - k * kLn2Hi) - k * kLn2Lo;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const float two_k = std::bit_cast<float>((static_cast<std::int32_t>(k) + 127) << 23);
  return y < kMinArg ? 0.f : p * two_k;
}

}  // namespace vitscale::cpu
