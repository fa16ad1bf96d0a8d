// attention.h — multi-head self-attention core (no causal mask), forward and
// backward, on timm's fused qkv layout.
//
// qkv (B, T, 3D) is timm's (B, T, 3, H, hd): for token t the query of head h is
// qkv[t, h·hd .. ), its key at D + h·hd, its value at 2D + h·hd. The output is
// (B, T, H, hd), i.e. (B, T, D), ready for the projection GEMM.
//
// Like FlashAttention, the forward saves only the output and the log-sum-exp
// of each scaled score row; the backward recomputes P = exp(S − lse). Where
// FlashAttention takes D = rowsum(dO ∘ O), this kernel holds a head's whole
// rows of P and dP and takes D = rowsum(P ∘ dP), the same quantity, without
// reading O back. At ViT sizes (T ≈ 50–200, hd = 32–64) a head fits in L2,
// so each (image, head) pair is one OpenMP work item: Q (and dO) are copied
// once, transposed, into padded scratch, the whole head's scores are formed
// transposed, Sᵀ = K·Qᵀ (T keys x T queries, fits in L2), by register-tiled
// products (6 rows x 16 columns of accumulators), and the softmax runs down
// Sᵀ's columns, every loop elementwise along a key's row of queries. P·V and,
// in the backward, dQ, dK and dV are plain products that read Pᵀ and dSᵀ in
// place, each output row written once.
// The next head's rows are prefetched while one head computes. Every gradient
// element is written by one thread in a fixed order: deterministic.
//
// The head kernels are compiled three times (attention.cpp): for AVX-512
// (x86-64-v4: one zmm per 16-wide tile row), AVX2 + FMA (x86-64-v3: two ymm)
// and baseline x86-64; each call runs the ISA it is given, by default
// attention_isa(). AVX2 and AVX-512 do the same multiply-adds per lane in the
// same order, so they give the same bits; the baseline has no FMA and differs
// from them in the last bits.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vitscale::cpu {

enum class AttentionIsa { kBaseline, kAvx2, kAvx512 };

// "baseline", "avx2", "avx512".
const char* attention_isa_name(AttentionIsa isa);
// Whether this CPU runs `isa` (x86-64-v3 for avx2, x86-64-v4 for avx512).
bool attention_isa_supported(AttentionIsa isa);
// The ISA the CPU backend runs: VITSCALE_CPU_ATTENTION (baseline, avx2 or
// avx512) when set, else the widest this CPU runs. Decided once per process;
// an unknown or unsupported value throws std::invalid_argument naming it.
AttentionIsa attention_isa();

// Floats of scratch each thread needs (padded copies of Q, K, V and dO, Kᵀ and
// Vᵀ, the head's P and dS, one result block).
std::size_t attention_scratch_floats(std::int64_t T, std::int64_t head_dim);

// out = softmax(Q Kᵀ / √hd) V per (b, h); lse = log Σ_j exp(q·k_j / √hd).
// scratch holds `threads` slots of attention_scratch_floats(T, hd) floats.
// An `isa` this CPU does not run throws std::invalid_argument.
void attention_forward(float* out,        // (B, T, D)
                       float* lse,        // (B, H, T)
                       const float* qkv,  // (B, T, 3D)
                       float* scratch,    // (threads, attention_scratch_floats(T, hd))
                       int threads, std::int64_t B, std::int64_t T, std::int64_t D, std::int64_t H,
                       AttentionIsa isa = attention_isa());

// d_qkv = gradient of attention_forward (assigned).
void attention_backward(float* d_qkv,        // (B, T, 3D)
                        const float* d_out,  // (B, T, D)
                        const float* qkv,    // (B, T, 3D)
                        const float* out,    // (B, T, D): not read here (D = rowsum(P ∘ dP))
                        const float* lse,    // (B, H, T)
                        float* scratch,      // (threads, attention_scratch_floats(T, hd))
                        int threads, std::int64_t B, std::int64_t T, std::int64_t D, std::int64_t H,
                        AttentionIsa isa = attention_isa());

}  // namespace vitscale::cpu
