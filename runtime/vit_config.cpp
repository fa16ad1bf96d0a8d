#include "runtime/vit_config.h"

#include <sstream>
#include <stdexcept>

namespace vitscale {

void ViTConfig::validate() const {
  auto positive = [](int v, const char* what) {
    if (v <= 0) throw std::invalid_argument(std::string("model config: ") + what + " must be positive, got " + std::to_string(v));
  };
  positive(image_size, "image_size");
  positive(channels, "channels");
  positive(patch_size, "patch_size");
  positive(dim, "dim");
  positive(depth, "depth");
  positive(heads, "heads");
  positive(mlp_dim, "mlp_dim");
  positive(num_classes, "num_classes");
  if (channels != 1 && channels != 3)
    throw std::invalid_argument("model config: channels must be 1 or 3, got " + std::to_string(channels));
  if (image_size % patch_size != 0)
    throw std::invalid_argument("model config: image_size " + std::to_string(image_size) +
                                " is not divisible by patch_size " + std::to_string(patch_size));
  if (dim % heads != 0)
    throw std::invalid_argument("model config: dim " + std::to_string(dim) + " is not divisible by heads " +
                                std::to_string(heads));
}

std::string ViTConfig::describe() const {
  std::ostringstream s;
  s << "ViT(I=" << image_size << " C=" << channels << " P=" << patch_size << " D=" << dim << " L=" << depth
    << " H=" << heads << " F=" << mlp_dim << " K=" << num_classes << " T=" << tokens()
    << " pool=" << (pooling == Pooling::cls_token ? "cls" : "mean") << ")";
  return s.str();
}

const std::vector<ViTPreset>& vit_presets() {
  static const std::vector<ViTPreset> presets = {
      // Sized for tools/run.sh on Fashion-MNIST on 2 CPU cores: 16 epochs in
      // 8-10 minutes, 89.2% (docs/results/fashion_mnist.md). 16 patches of 7x7
      // (+ cls = 17 tokens) cost about a third of patch 4's 50 tokens; on the
      // holdout, patch 4 (D=64) and a wider MLP (384) did worse for their time.
      {"vit-cpu", "small CPU model: 28x28, patch 7, D=96, 4 blocks, 4 heads, MLP 192", 28, 7, 96, 4, 4, 192},
      {"vit-tiny", "ViT-Tiny at patch 4 for 32x32: D=192, 12 blocks, 3 heads, MLP 768", 0, 4, 192, 12, 3, 768},
      {"vit-small", "ViT-Small at patch 4 for 32x32: D=384, 12 blocks, 6 heads, MLP 1536", 0, 4, 384, 12, 6, 1536},
      {"vit-base", "ViT-Base at patch 4 for 32x32: D=768, 12 blocks, 12 heads, MLP 3072", 0, 4, 768, 12, 12, 3072},
      {"vit-b16-224", "ViT-B/16, the paper's workload: 224x224 (images resized), patch 16, 197 tokens, D=768, 12 blocks, 12 heads, MLP 3072",
       224, 16, 768, 12, 12, 3072},
  };
  return presets;
}

const ViTPreset* find_vit_preset(std::string_view name) {
  for (const ViTPreset& p : vit_presets())
    if (p.name == name) return &p;
  return nullptr;
}

std::string vit_preset_names() {
  std::string names;
  for (const ViTPreset& p : vit_presets()) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

const ViTPreset& vit_preset(std::string_view name) {
  if (const ViTPreset* p = find_vit_preset(name)) return *p;
  throw std::invalid_argument("model preset '" + std::string(name) + "' is not one of " + vit_preset_names());
}

ViTConfig ViTPreset::config(int channels_, int num_classes_, int image_side) const {
  ViTConfig c;
  c.image_size = image_size > 0 ? image_size : image_side;
  c.channels = channels_;
  c.patch_size = patch_size;
  c.dim = dim;
  c.depth = depth;
  c.heads = heads;
  c.mlp_dim = mlp_dim;
  c.num_classes = num_classes_;
  c.pooling = Pooling::cls_token;
  return c;
}

}  // namespace vitscale
