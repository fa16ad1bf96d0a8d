// residual.h — elementwise sum, the residual stream's add when it is not fused
// into the next layernorm (after the last block).
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// out = a + b; out may alias a or b.
void add_forward(float* out,      // (n)
                 const float* a,  // (n)
                 const float* b,  // (n)
                 std::int64_t n);

}  // namespace vitscale::cpu
