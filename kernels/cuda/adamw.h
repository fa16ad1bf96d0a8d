// adamw.h — AdamW over the flat fp32 parameter buffer in one launch, with
// global-norm clipping computed on the device (no host sync, graph-capturable).
//
// The step's scalars live in device memory (AdamWDeviceHyper), written by a
// one-thread kernel whose arguments carry the values: outside a CUDA graph the
// backend writes them right before the update; for a captured step the caller
// writes them before each replay (CudaBackend::set_adamw_hyper), so the graph
// itself never freezes lr or the step count.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitscale::cuda {

struct AdamWDeviceHyper {
  float lr = 0.f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  float bias_correction1 = 1.f;       // 1 − β1^step
  float bias_correction2_sqrt = 1.f;  // sqrt(1 − β2^step)
  float max_grad_norm = 0.f;          // <= 0: no clipping
};

// A run of the flat buffer and its weight-decay rule (offsets relative to params).
struct DeviceSegment {
  std::int64_t offset;
  std::int64_t numel;
  std::int32_t decay;
  std::int32_t pad_;
};

// *dst = h, enqueued on `stream` (kernel arguments: no host memory to keep alive).
void adamw_write_hyper(cudaStream_t stream, AdamWDeviceHyper* dst, const AdamWDeviceHyper& h);

// For every element i inside a segment (segments sorted by offset, disjoint):
//   g = grads[i]·clip, clip = min(1, max_norm / sqrt(*grad_norm_sq)) when max_norm > 0;
//   p ← p·(1 − lr·wd) if the segment decays; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)          (PyTorch's AdamW)
// Elements outside every segment (alignment padding) are left untouched.
// params, grads, m, v (n) f32; grad_norm_sq (1) f32 device (may be null when no clipping).
void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, std::int64_t n,
                  const DeviceSegment* segments, int num_segments, const AdamWDeviceHyper* hyper,
                  const float* grad_norm_sq);

}  // namespace vitscale::cuda
