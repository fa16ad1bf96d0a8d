// attention.h — multi-head self-attention core (no causal mask), forward and
// backward, on timm's fused qkv layout.
//
// qkv (B, T, 3D) is timm's (B, T, 3, H, hd): for token t the query of head h is
// qkv[t, h·hd .. ), its key at D + h·hd, its value at 2D + h·hd. The output is
// (B, T, H, hd), i.e. (B, T, D), ready for the projection GEMM.
//
// Like FlashAttention, the forward saves only the output and the log-sum-exp
// of each scaled score row; the backward recomputes P = exp(S − lse) and uses
// D = rowsum(dO ∘ O). At ViT sizes (T ≈ 50–200, hd = 32–64) a head fits in L2,
// so each (image, head) pair is one OpenMP work item: its K and V are copied
// once into padded (and, where the product needs it, transposed) scratch, then
// blocks of 4 query rows go through register-tiled products (4 rows x 16
// columns of accumulators), softmax and the dS algebra. At the bar's shapes
// (B 128, T 50, H 4, hd 32) the row-at-a-time loops this replaced took ~1.4x
// (forward) and ~2x (backward) as long. Every gradient element is written by
// one thread in a fixed order: deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vitscale::cpu {

// Floats of scratch each thread needs (padded copies of K and V, the dK and dV
// accumulators, a block of score rows).
std::size_t attention_scratch_floats(std::int64_t T, std::int64_t head_dim);

// out = softmax(Q Kᵀ / √hd) V per (b, h); lse = log Σ_j exp(q·k_j / √hd).
// scratch holds `threads` slots of attention_scratch_floats(T, hd) floats.
void attention_forward(float* out,        // (B, T, D)
                       float* lse,        // (B, H, T)
                       const float* qkv,  // (B, T, 3D)
                       float* scratch,    // (threads, attention_scratch_floats(T, hd))
                       int threads, std::int64_t B, std::int64_t T, std::int64_t D, std::int64_t H);

// d_qkv = gradient of attention_forward (assigned).
void attention_backward(float* d_qkv,        // (B, T, 3D)
                        const float* d_out,  // (B, T, D)
                        const float* qkv,    // (B, T, 3D)
                        const float* out,    // (B, T, D)
                        const float* lse,    // (B, H, T)
                        float* scratch,      // (threads, attention_scratch_floats(T, hd))
                        int threads, std::int64_t B, std::int64_t T, std::int64_t D, std::int64_t H);

}  // namespace vitscale::cpu
