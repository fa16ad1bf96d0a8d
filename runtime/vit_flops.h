// vit_flops.h — a ViT's floating-point operations, counted from its shape:
// GEMMs and the two attention products only (multiply-add = 2 FLOPs); norms,
// softmax, GELU and the optimizer are left out (a few percent at these widths).
// Shared by vit_train's flops_profiler and the scaling study's analytic profile.
#pragma once

#include "runtime/vit_config.h"

namespace vitscale {

struct ViTFlops {
  double embed = 0, block = 0, head = 0;  // forward, per image; `block` is one transformer block
  int depth = 0;
  double forward() const { return embed + depth * block + head; }
  // Input and weight gradients: 2x forward for every GEMM except the patch
  // embedding's, whose input gradient is not needed (1x).
  double backward() const { return 2.0 * (depth * block + head) + embed; }
  double training() const { return forward() + backward(); }  // per image, one forward and one backward
};

ViTFlops vit_flops(const ViTConfig& cfg);

}  // namespace vitscale
