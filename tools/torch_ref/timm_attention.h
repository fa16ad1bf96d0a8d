// timm_attention.h — multi-head self-attention as timm's ViT computes it, in
// LibTorch: the one definition shared by the reference model (torch_vit.cpp)
// and vit_bench's LibTorch baseline (tools/vit_bench/torch_ops.cpp), so the
// benchmark times exactly what the baseline model runs. Includes LibTorch:
// only translation units that already pay for torch/torch.h include it.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <cstdint>

namespace vitscale::torch_ref {

// qkv (B, T, 3·D) as the qkv linear writes it → attention output (B, T, D).
// Fused scaled_dot_product_attention where PyTorch has it (>= 2) and `fused`
// asks for it; otherwise timm's explicit softmax(q·hd^-½ · kᵀ)·v.
inline torch::Tensor timm_attention(const torch::Tensor& qkv, std::int64_t heads, bool fused) {
  const std::int64_t B = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / 3, hd = D / heads;
  const auto qkv_heads = qkv.reshape({B, T, 3, heads, hd}).permute({2, 0, 3, 1, 4}).unbind(0);  // 3 × (B, H, T, hd)
  torch::Tensor o;                                                                                  // (B, H, T, hd)
#if TORCH_VERSION_MAJOR >= 2
  if (fused) o = at::scaled_dot_product_attention(qkv_heads[0], qkv_heads[1], qkv_heads[2]);
#else
  (void)fused;
#endif
  if (!o.defined()) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    const torch::Tensor attn = torch::matmul(qkv_heads[0] * scale, qkv_heads[1].transpose(-2, -1)).softmax(-1);  // (B, H, T, T)
    o = torch::matmul(attn, qkv_heads[2]);
  }
  return o.transpose(1, 2).reshape({B, T, D});
}

}  // namespace vitscale::torch_ref
