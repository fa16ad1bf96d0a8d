#include "runtime/vit_flops.h"

namespace vitscale {

ViTFlops vit_flops(const ViTConfig& c) {
  const double T = c.tokens(), D = c.dim, F = c.mlp_dim, Np = c.num_patches();
  ViTFlops f;
  f.depth = c.depth;
  f.embed = 2.0 * Np * c.patch_dim() * D;
  // qkv (3D²) + proj (D²) + fc1 and fc2 (2DF) per token, and the two T×T
  // attention products (QKᵀ and PV) over all heads.
  f.block = 2.0 * T * (4.0 * D * D + 2.0 * D * F) + 4.0 * T * T * D;
  f.head = 2.0 * D * c.num_classes;  // one pooled token per image
  return f;
}

}  // namespace vitscale
