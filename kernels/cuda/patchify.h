// patchify.h — uint8 images to normalised patch vectors in one pass, with an
// optional bilinear resize (align_corners=False) from the source size S to the
// model size I, class token + position embedding, and token pooling.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/tensor.h"

namespace vitscale::cuda {

// patches (B, Np, C·P·P) of dt, Np = (I/P)², vector order (c, py, px);
// images (B, C, S, S) u8. value = (pixel/255 − mean[c]) / std[c], where pixel is
// the bilinear sample at the model resolution when S != I.
void image_to_patches(cudaStream_t stream, DType dt, void* patches, const std::uint8_t* images, int B, int C, int S,
                      int I, int P, const float* mean, const float* std);

// tokens (B, T, D) = [cls (D); patch_emb (B, Np, D)] + pos (T, D); cls == nullptr → T == Np.
void embed_tokens_forward(cudaStream_t stream, DType dt, void* tokens, const void* patch_emb, const void* cls,
                          const void* pos, int B, int T, int D);
// d_patch_emb (B, Np, D) = d_tokens[:, T−Np:];  d_cls (D) f32 += Σ_b d_tokens[b, 0];
// d_pos (T, D) f32 += Σ_b d_tokens[b]  (sums in batch order: deterministic).
void embed_tokens_backward(cudaStream_t stream, DType dt, void* d_patch_emb, float* d_cls, float* d_pos,
                           const void* d_tokens, int B, int T, int D, bool has_cls);

// pooled (B, D) = x[:, 0] (mean_pool false) or mean over T; x (B, T, D).
void pool_forward(cudaStream_t stream, DType dt, void* pooled, const void* x, int B, int T, int D, bool mean_pool);
// d_x (B, T, D) = row 0 ← d_pooled, others 0 (cls) or d_pooled / T everywhere (mean).
void pool_backward(cudaStream_t stream, DType dt, void* d_x, const void* d_pooled, int B, int T, int D,
                   bool mean_pool);

}  // namespace vitscale::cuda
