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

}  // namespace vitscale
