// cross_entropy.h — softmax cross-entropy against soft targets, loss and
// gradient in one pass over the logits.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/tensor.h"

namespace vitscale::cuda {

// losses (B) f32 = −Σ_k t·log softmax(logits); d_logits (B, K) of dt =
// (softmax − t) · grad_scale; logits (B, K) of dt; targets (B, K) f32.
void cross_entropy(cudaStream_t stream, DType dt, float* losses, void* d_logits, const void* logits,
                   const float* targets, int B, int K, float grad_scale);

}  // namespace vitscale::cuda
