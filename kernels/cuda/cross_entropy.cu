// cross_entropy.cu — softmax cross-entropy with soft targets (see cross_entropy.h).
//
// One warp per image: max and Σexp as warp reductions over the K logits (K is
// 10…1000, a few values per lane), then loss and d_logits in the same pass.
// The loss uses Σ_k t_k·(lse − l_k), which stays finite for any finite logits.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda {
namespace {

constexpr int kWarps = 4;

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    cross_entropy_kernel(float* __restrict__ losses, T* __restrict__ d_logits, const T* __restrict__ logits,
                         const float* __restrict__ targets, int B, int K, float grad_scale) {
  const int lane = threadIdx.x % 32;
  const long long b = static_cast<long long>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (b >= B) return;
  const T* l = logits + b * K;
  const float* t = targets + b * K;
  float mx = -INFINITY;
  for (int k = lane; k < K; k += 32) mx = fmaxf(mx, to_float(l[k]));
  mx = warp_max(mx);
  float se = 0.f;
  for (int k = lane; k < K; k += 32) se += expf(to_float(l[k]) - mx);
  se = warp_sum(se);
  const float lse = mx + logf(se);
  float loss = 0.f;
  for (int k = lane; k < K; k += 32) {
    const float lk = to_float(l[k]), tk = t[k];
    loss += tk * (lse - lk);
    d_logits[b * K + k] = from_float<T>((expf(lk - lse) - tk) * grad_scale);
  }
  loss = warp_sum(loss);
  if (lane == 0) losses[b] = loss;
}

}  // namespace

void cross_entropy(cudaStream_t stream, DType dt, float* losses, void* d_logits, const void* logits,
                   const float* targets, int B, int K, float grad_scale) {
  if (B == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(B, kWarps));
  if (dt == DType::f32)
    cross_entropy_kernel<float><<<grid, kWarps * 32, 0, stream>>>(losses, static_cast<float*>(d_logits),
                                                                  static_cast<const float*>(logits), targets, B, K,
                                                                  grad_scale);
  else
    cross_entropy_kernel<bf16><<<grid, kWarps * 32, 0, stream>>>(losses, static_cast<bf16*>(d_logits),
                                                                 static_cast<const bf16*>(logits), targets, B, K,
                                                                 grad_scale);
  VS_LAUNCH_CHECK("cross_entropy (" + dims({{"B", B}, {"K", K}}) + " " + dtype_name(dt) + ")");
}

}  // namespace vitscale::cuda
