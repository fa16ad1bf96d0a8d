// cross_entropy.h — softmax cross-entropy against soft targets, forward and
// backward in one pass (the loss is the last op, so its gradient is free).
//
// Targets are a distribution per row (one-hot, label-smoothed or mixed by
// mixup/cutmix): label smoothing lives in the targets, not here. Each row is
// computed in double: K is small and this is the oracle.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// losses[b] = −Σ_k t[b,k]·log softmax(logits[b])_k;
// d_logits = (softmax(logits) − t)·grad_scale (skipped when nullptr).
void cross_entropy_forward_backward(float* losses,         // (B)
                                    float* d_logits,       // (B, K) or nullptr
                                    const float* logits,   // (B, K)
                                    const float* targets,  // (B, K), rows sum to 1
                                    std::int64_t B, std::int64_t K, float grad_scale);

}  // namespace vitscale::cpu
