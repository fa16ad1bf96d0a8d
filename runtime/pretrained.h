// pretrained.h — start from someone else's weights (--init-from): a timm-named
// ViT state dict loaded into a model of another grid or class count.
//
// What may differ from the model, and what is done (the rest is refused with
// one line naming the tensor):
//   pos_embed (1, prefix + g*g, D) on another square patch grid: resampled over
//     the grid, the prefix (class token) row kept, as timm's
//     resample_abs_pos_embed does: bicubic with antialiasing (PyTorch's
//     interpolate(mode='bicubic', antialias=True, align_corners=False),
//     PIL's resampling: the a = -0.5 cubic, support widened when shrinking,
//     taps outside the grid dropped and the rest renormalised);
//   head.weight (K', D) / head.bias (K') for another class count, or no head
//     (a timm model built with num_classes=0): the model's own, freshly
//     initialised head is kept.
// optimizer.* / state.* tensors of a vitscale checkpoint are ignored.
#pragma once

#include <string>
#include <vector>

#include "runtime/safetensors.h"

namespace vitscale {

// pos (prefix + old_h*old_w, D) row-major -> (prefix + new_h*new_w, D); the prefix rows are copied.
std::vector<float> resample_pos_embed(const std::vector<float>& pos, int prefix, int old_h, int old_w, int new_h,
                                      int new_w, int dim);

// Overwrites the model's parameters with the file's, adapted as above; the
// parameters it does not take (a fresh head) keep their current values, so
// call model.init_parameters(seed) first. Returns one line per adaptation, for
// the start-up log. Throws std::runtime_error naming `what` and the tensor.
std::vector<std::string> init_from_pretrained(ViTModel& model, const SafetensorsFile& file, const std::string& what);

}  // namespace vitscale
