// attention.h — multi-head self-attention forward and backward for ViT's short
// sequences, qkv in timm's layout.
//
// Shapes: qkv (B, T, 3, H, hd) = (B, T, 3D); out (B, T, H, hd) = (B, T, D);
// lse (B, H, T) f32, the log-sum-exp of each scaled score row (scale = 1/√hd).
// Backward recomputes P from qkv and lse (nothing of size T² is stored).
//
// Two implementations, picked per call (attention.cpp):
//   * flash (attention_flash.cu): bf16 with hd ∈ {32, 48, 64, 80, 96, 128} — tensor-core
//     mma.sync m16n8k16; one block covers all queries of an (image, head) when
//     T ≤ 128, and K/V (Q/dO in the dK/dV kernel) are one shared-memory chunk
//     of round_up(T, 16) rows there, streamed in chunks with online softmax
//     beyond (attention_chunks.h);
//   * fused SIMT (attention_fused.cu): f32 (exact fp32, the CPU reference's
//     precision) and any other bf16 head size — the whole K and V of an
//     (image, head) in shared memory, fp32 FMA.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "runtime/tensor.h"

namespace vitscale::cuda {

// What the dispatcher needs to know about the card.
struct AttentionDevice {
  int max_smem_optin = 48 * 1024;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
};

// Raises the kernels' dynamic shared-memory limits; call once per device before use.
void attention_init(const AttentionDevice& dev);

void attention_forward(cudaStream_t stream, DType dt, void* out, float* lse, const void* qkv, int B, int T, int H,
                       int hd, const AttentionDevice& dev);

// Scratch bytes attention_backward needs: D = rowsum(dO ∘ O), (B, H, T) f32.
std::size_t attention_backward_scratch_bytes(int B, int T, int H);

// d_qkv (B, T, 3, H, hd) = (every element written); d_out, out (B, T, H, hd).
void attention_backward(cudaStream_t stream, DType dt, void* d_qkv, const void* d_out, const void* qkv,
                        const void* out, const float* lse, int B, int T, int H, int hd, float* scratch,
                        std::size_t scratch_bytes, const AttentionDevice& dev);

}  // namespace vitscale::cuda
