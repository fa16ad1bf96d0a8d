#include "kernels/cpu/weight_ema.h"

namespace vitscale::cpu {

void weight_ema_update(float* ema, const float* params, std::int64_t n, float decay) {
  const float keep = decay, take = 1.f - decay;
  // Built with -ffp-contract=off (kernels/cpu/CMakeLists.txt) and without
  // target clones: each element is (keep·e) + (take·p), each product rounded,
  // whatever the thread count, the machine or VITSCALE_NATIVE.
#pragma omp parallel for simd schedule(static) if (n >= 1 << 16)
  for (std::int64_t i = 0; i < n; ++i) ema[i] = keep * ema[i] + take * params[i];
}

}  // namespace vitscale::cpu
