// weight_ema.cu — the weights' moving average (see weight_ema.h).
//
// Pure bandwidth (12 bytes per parameter): float4 loads when both buffers are
// 16-byte aligned, a grid-stride loop, and __fmul_rn / __fadd_rn so nvcc cannot
// contract the two products into an FMA (the CPU reference rounds both).
#include <algorithm>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/weight_ema.h"

namespace vitscale::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float blend(float e, float p, float keep, float take) {
  return __fadd_rn(__fmul_rn(keep, e), __fmul_rn(take, p));
}

__global__ void __launch_bounds__(kThreads) weight_ema_kernel(float* __restrict__ ema, const float* __restrict__ params,
                                                              long long n, float keep, float take, bool vec) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long q = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; q * 4 < n; q += stride) {
    const long long i0 = q * 4;
    if (vec && i0 + 4 <= n) {
      float4 e = *reinterpret_cast<const float4*>(ema + i0);
      const float4 p = *reinterpret_cast<const float4*>(params + i0);
      e.x = blend(e.x, p.x, keep, take), e.y = blend(e.y, p.y, keep, take);
      e.z = blend(e.z, p.z, keep, take), e.w = blend(e.w, p.w, keep, take);
      *reinterpret_cast<float4*>(ema + i0) = e;
    } else {
      for (long long i = i0; i < n && i < i0 + 4; ++i) ema[i] = blend(ema[i], params[i], keep, take);
    }
  }
}

}  // namespace

void weight_ema_update(cudaStream_t stream, float* ema, const float* params, std::int64_t n, float decay) {
  if (n == 0) return;
  const bool vec = aligned16(ema) && aligned16(params);
  const unsigned grid = static_cast<unsigned>(std::clamp(ceil_div(ceil_div(n, 4), kThreads), 1LL, 65535LL));
  weight_ema_kernel<<<grid, kThreads, 0, stream>>>(ema, params, n, decay, 1.f - decay, vec);
  VS_LAUNCH_CHECK("weight_ema (" + dims({{"n", n}}) + ")");
}

}  // namespace vitscale::cuda
