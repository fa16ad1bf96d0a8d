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
// How the sequence is cut into shared-memory chunks and register tiles: attention_chunks.h.
// flash_init raises every flash kernel's dynamic shared-memory limit to the card's
// opt-in limit (once per device); the launches take that limit to pick the chunks.
void flash_init(int max_smem_optin);
void flash_forward(cudaStream_t stream, void* out, float* lse, const void* qkv, int B, int T, int H, int hd,
                   int max_smem_optin);
void flash_backward(cudaStream_t stream, void* d_qkv, const void* d_out, const void* qkv, const float* lse,
                    const float* dsum, int B, int T, int H, int hd, int max_smem_optin);

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
