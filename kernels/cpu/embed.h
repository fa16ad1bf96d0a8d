// embed.h — token assembly after the patch embedding: the class token in front
// (when the model has one) and the learned position embedding added.
//
// Backward: the patch rows of d_tokens are copied out (activation gradient,
// assigned); the class-token and position gradients are sums over the batch
// (parameter gradients, accumulated), each element summed over b in order by
// one thread: deterministic.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// tokens[b] = [cls; patch_emb[b]] + pos  (T = Np + 1), or patch_emb[b] + pos
// (T = Np) when cls is nullptr.
void embed_forward(float* tokens,           // (B, T, D)
                   const float* patch_emb,  // (B, Np, D)
                   const float* cls,        // (D) or nullptr
                   const float* pos,        // (T, D)
                   std::int64_t B, std::int64_t Np, std::int64_t D);

// d_patch_emb = patch rows of d_tokens; d_cls += Σ_b d_tokens[b, 0];
// d_pos += Σ_b d_tokens[b].
void embed_backward(float* d_patch_emb,     // (B, Np, D)
                    float* d_cls,           // (D) or nullptr (then T = Np)
                    float* d_pos,           // (T, D)
                    const float* d_tokens,  // (B, T, D)
                    std::int64_t B, std::int64_t Np, std::int64_t D);

}  // namespace vitscale::cpu
