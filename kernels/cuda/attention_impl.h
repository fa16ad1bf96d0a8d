// attention_impl.h — the two attention implementations behind attention.h
// (internal to kernels/cuda; attention.cpp picks one per call).
// Shapes as in attention.h; `dsum` is D = rowsum(dO ∘ O), (B, H, T) f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "runtime/tensor.h"

namespace vitscale::cuda::attn {

// Tensor-core flash path (attention_flash.cu): bf16, hd ∈ {32, 48, 64, 80, 96, 128}.
bool flash_supports_head_dim(int hd);
// Keys per shared-memory chunk of the forward for T tokens at head size hd: 80
// when 64 < T <= 80 (ViT at 32x32, patch 4: T = 65 in one chunk instead of
// 64 + 1), else 64. Not at hd 80, where ptxas 13.0 spills the 80-key kernel
// (28 bytes; every other 80-key instance has no spill, 127-199 registers). One
// chunk of round_up(T, 16) for every T <= 128 would need dynamic shared memory
// (at hd 128 a 96-key chunk passes the 48 KiB static limit): not done.
constexpr int flash_forward_key_chunk(int T, int hd) { return T > 64 && T <= 80 && hd != 80 ? 80 : 64; }
void flash_forward(cudaStream_t stream, void* out, float* lse, const void* qkv, int B, int T, int H, int hd);
void flash_backward(cudaStream_t stream, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                    const float* dsum, int B, int T, int H, int hd);

// fp32-arithmetic SIMT path (attention_fused.cu): f32 or bf16 storage, hd ≤ 128.
constexpr int kSimtMaxHeadDim = 128;
std::size_t simt_forward_smem_bytes(int T, int hd);
std::size_t simt_backward_smem_bytes(int T, int hd);
void simt_init(int max_smem_optin);
void simt_forward(cudaStream_t stream, DType dt, void* out, float* lse, const void* qkv, int B, int T, int H, int hd);
void simt_backward(cudaStream_t stream, DType dt, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                   const float* dsum, int B, int T, int H, int hd);

// dsum (B, H, T) = Σ_d d_out ∘ out (either path's backward needs it first).
void row_dot(cudaStream_t stream, DType dt, float* dsum, const void* d_out, const void* out, int B, int T, int H,
             int hd);

}  // namespace vitscale::cuda::attn
