// vit_config.h — the shape of a Vision Transformer, and its validation.
//
// One struct describes the model; everything else (parameter table, memory
// plan, kernels' shapes) is derived from it. validate() refuses a configuration
// that cannot work with one line naming the problem.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/backend.h"

namespace vitscale {

struct ViTConfig {
  int image_size = 28;    // I: the model's input side (images are square)
  int channels = 1;       // C: 1 (Fashion-MNIST) or 3 (CIFAR)
  int patch_size = 4;     // P
  int dim = 128;          // D
  int depth = 6;          // L blocks
  int heads = 4;          // H
  int mlp_dim = 512;      // F (timm: mlp_ratio * D)
  int num_classes = 10;   // K
  Pooling pooling = Pooling::cls_token;  // cls_token (timm global_pool='token') or mean ('avg')

  int patches_per_side() const { return image_size / patch_size; }
  int num_patches() const { return patches_per_side() * patches_per_side(); }  // Np
  int tokens() const { return num_patches() + (has_cls_token() ? 1 : 0); }     // T
  bool has_cls_token() const { return pooling == Pooling::cls_token; }
  int head_dim() const { return dim / heads; }
  int patch_dim() const { return channels * patch_size * patch_size; }

  // Throws std::invalid_argument with one line naming the problem.
  void validate() const;
  std::string describe() const;  // "ViT(I=28 C=1 P=4 D=128 L=6 H=4 F=512 K=10 pool=cls)"
};

// A named model shape, the one table that vit_train --model, vit_bench and the
// scaling tools share. image_size 0: the dataset's own side (28 for
// Fashion-MNIST, 32 for CIFAR).
struct ViTPreset {
  std::string name, description;
  int image_size, patch_size, dim, depth, heads, mlp_dim;

  // The model for `channels` and `num_classes` (cls-token pooling); a preset
  // whose image_size is 0 takes `image_side`.
  ViTConfig config(int channels, int num_classes, int image_side = 0) const;
};
const std::vector<ViTPreset>& vit_presets();
const ViTPreset* find_vit_preset(std::string_view name);  // nullptr when there is none
std::string vit_preset_names();                            // "vit-cpu, vit-tiny, ..."
// Throws std::invalid_argument naming the known presets.
const ViTPreset& vit_preset(std::string_view name);

}  // namespace vitscale
