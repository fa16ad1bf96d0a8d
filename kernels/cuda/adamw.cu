// adamw.cu — fused AdamW with on-device clipping (see adamw.h).
//
// One thread per 4 consecutive elements (float4 loads of p, g, m, v when
// aligned): AdamW is pure bandwidth (28 bytes per parameter), so the only
// things that matter are wide loads and one pass. The weight-decay flag comes
// from the segment table by binary search (a few L1-resident loads per thread),
// which keeps the launch single for the whole model.
#include <algorithm>
#include <string>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void write_hyper_kernel(AdamWDeviceHyper* dst, AdamWDeviceHyper h) { *dst = h; }

// Index of the last segment with offset <= i, or -1.
__device__ int segment_at(const DeviceSegment* s, int n, long long i) {
  int lo = 0, hi = n - 1, found = -1;
  while (lo <= hi) {
    const int mid = (lo + hi) / 2;
    if (s[mid].offset <= i) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float* __restrict__ params, const float* __restrict__ grads, float* __restrict__ m,
                 float* __restrict__ v, long long n, const DeviceSegment* __restrict__ segs, int nsegs,
                 const AdamWDeviceHyper* __restrict__ hyper, const float* __restrict__ grad_norm_sq, bool vec) {
  const AdamWDeviceHyper h = *hyper;
  float clip = 1.f;
  if (h.max_grad_norm > 0.f && grad_norm_sq != nullptr) clip = fminf(1.f, h.max_grad_norm / sqrtf(*grad_norm_sq));
  const float b1 = h.beta1, b2 = h.beta2;
  const float step_size = h.lr / h.bias_correction1;
  const float decay_factor = 1.f - h.lr * h.weight_decay;

  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long q = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; q * 4 < n; q += stride) {
    const long long i0 = q * 4;
    const int cnt = static_cast<int>(min(4LL, n - i0));
    float p[4], g[4], mm[4], vv[4];
    if (vec && cnt == 4) {
      const float4 a = *reinterpret_cast<const float4*>(params + i0), b = __ldcs(reinterpret_cast<const float4*>(grads + i0));
      const float4 c = *reinterpret_cast<const float4*>(m + i0), d = *reinterpret_cast<const float4*>(v + i0);
      p[0] = a.x, p[1] = a.y, p[2] = a.z, p[3] = a.w;
      g[0] = b.x, g[1] = b.y, g[2] = b.z, g[3] = b.w;
      mm[0] = c.x, mm[1] = c.y, mm[2] = c.z, mm[3] = c.w;
      vv[0] = d.x, vv[1] = d.y, vv[2] = d.z, vv[3] = d.w;
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool ok = e < cnt;
        p[e] = ok ? params[i0 + e] : 0.f, g[e] = ok ? grads[i0 + e] : 0.f;
        mm[e] = ok ? m[i0 + e] : 0.f, vv[e] = ok ? v[i0 + e] : 0.f;
      }
    }
    int seg = segment_at(segs, nsegs, i0);
    bool changed[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const long long i = i0 + e;
      changed[e] = false;
      if (e >= cnt) continue;
      if (seg < 0 || i >= segs[seg].offset + segs[seg].numel) seg = segment_at(segs, nsegs, i);
      if (seg < 0 || i >= segs[seg].offset + segs[seg].numel) continue;  // padding between parameters
      const float gi = g[e] * clip;
      float pi = p[e];
      if (segs[seg].decay) pi *= decay_factor;
      mm[e] = b1 * mm[e] + (1.f - b1) * gi;
      vv[e] = b2 * vv[e] + (1.f - b2) * gi * gi;
      const float denom = sqrtf(vv[e]) / h.bias_correction2_sqrt + h.eps;
      p[e] = pi - step_size * mm[e] / denom;
      changed[e] = true;
    }
    if (vec && cnt == 4 && changed[0] && changed[1] && changed[2] && changed[3]) {
      *reinterpret_cast<float4*>(params + i0) = make_float4(p[0], p[1], p[2], p[3]);
      *reinterpret_cast<float4*>(m + i0) = make_float4(mm[0], mm[1], mm[2], mm[3]);
      *reinterpret_cast<float4*>(v + i0) = make_float4(vv[0], vv[1], vv[2], vv[3]);
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (e < cnt && changed[e]) params[i0 + e] = p[e], m[i0 + e] = mm[e], v[i0 + e] = vv[e];
    }
  }
}

}  // namespace

void adamw_write_hyper(cudaStream_t stream, AdamWDeviceHyper* dst, const AdamWDeviceHyper& h) {
  write_hyper_kernel<<<1, 1, 0, stream>>>(dst, h);
  VS_LAUNCH_CHECK(std::string("adamw (write hyper-parameters)"));
}

void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, std::int64_t n,
                  const DeviceSegment* segments, int num_segments, const AdamWDeviceHyper* hyper,
                  const float* grad_norm_sq) {
  if (n == 0 || num_segments == 0) return;
  const bool vec = aligned16(params) && aligned16(grads) && aligned16(m) && aligned16(v);
  const unsigned grid = static_cast<unsigned>(std::clamp(ceil_div(ceil_div(n, 4), kThreads), 1LL, 65535LL));
  adamw_kernel<<<grid, kThreads, 0, stream>>>(params, grads, m, v, n, segments, num_segments, hyper, grad_norm_sq, vec);
  VS_LAUNCH_CHECK("adamw (" + dims({{"n", n}, {"segments", num_segments}}) + ")");
}

}  // namespace vitscale::cuda
