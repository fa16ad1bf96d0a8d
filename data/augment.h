// augment.h — training augmentation on uint8 images, and the soft targets it implies.
//
// Per sample, in this order (torchvision's CIFAR recipe):
//   1. random crop with padding p: the image is zero-padded by p on every side
//      and an HxW window is taken at offset (dy, dx), each uniform in [0, 2p];
//   2. horizontal flip with probability 1/2;
//   3. RandAugment (optional; see randaugment.h).
// Per batch, optionally one of (timm's "batch" mode):
//   mixup:  row i becomes round(lam * x_i + (1 - lam) * x_j), lam ~ Beta(a, a),
//           j = B-1-i (the batch reversed, as timm's x.flip(0)). Blending happens
//           in uint8 with round-to-nearest: every pixel is within 0.5/255 of the
//           exact blend (normalisation being affine, blending after it would give
//           the same up to that quantisation). Targets use the exact lam.
//   cutmix: a box of area about (1 - lam) * H * W, lam ~ Beta(a, a), centred
//           uniformly (clipped at the border) is copied from row j into row i;
//           lam is then corrected to 1 - box_area / (H*W). Exact in uint8.
// With both enabled, cutmix is chosen with probability switch_prob; a batch is
// mixed at all with probability mix_prob.
//
// Soft targets (B, K), summing to 1 per row, include label smoothing eps as in
// torch.nn.functional.cross_entropy(label_smoothing=eps):
//   t(y) = (1 - eps) * onehot(y) + eps / K,     row i: lam * t(y_i) + (1 - lam) * t(y_j).
// The hard label of a mixed row is the dominant one (y_i when lam >= 0.5).
//
// Every random draw comes from a Rng keyed by the caller (rng.h), so the result
// is a pure function of (image, config, key).
#pragma once

#include <cstdint>
#include <vector>

#include "data/randaugment.h"
#include "data/rng.h"

namespace vitscale::data {

struct AugmentConfig {
  int crop_padding = 0;            // p; 0 = no random crop
  bool horizontal_flip = false;    // flip with probability 1/2
  int randaugment_ops = 0;         // RandAugment N (0 = off)
  int randaugment_magnitude = 9;   // RandAugment M, in [0, 30] (31 bins, torchvision's scale)
  float mixup_alpha = 0.f;         // > 0 enables mixup
  float cutmix_alpha = 0.f;        // > 0 enables cutmix
  float mix_prob = 1.f;            // probability that a batch is mixed (when either is enabled)
  float switch_prob = 0.5f;        // probability of cutmix over mixup when both are enabled
  float label_smoothing = 0.f;     // eps in [0, 1)

  bool any_per_sample() const { return crop_padding > 0 || horizontal_flip || randaugment_ops > 0; }
  bool any_mixing() const { return mixup_alpha > 0.f || cutmix_alpha > 0.f; }
};

// Throws std::invalid_argument naming the bad field.
void check_augment_config(const AugmentConfig& config, int height, int width);

// --- per sample --------------------------------------------------------------

struct CropFlip {
  int dy = 0, dx = 0;  // window offset inside the padded image, each in [0, 2p]
  bool flip = false;
};

// Crop at (dy, dx) from the image zero-padded by `padding`, then flip if asked:
// dst[c][y][x] = padded[c][y + dy][flip ? dx + W-1-x : dx + x], where
// padded[c][r][s] = src[c][r - p][s - p] inside the image and 0 outside.
void crop_flip(const std::uint8_t* src, int channels, int height, int width, int padding, CropFlip geometry,
               std::uint8_t* dst);  // src, dst: (C, H, W) uint8

// Draws the crop/flip geometry then RandAugment from Rng(sample_key) and writes
// the augmented image into dst. `scratch` is grown as needed and reused.
void augment_sample(const std::uint8_t* src, int channels, int height, int width, const AugmentConfig& config,
                    std::uint64_t sample_key, std::uint8_t* dst, AugmentScratch& scratch);

// --- per batch ---------------------------------------------------------------

enum class MixKind : std::uint8_t { none, mixup, cutmix };
const char* mix_kind_name(MixKind kind);

struct MixDecision {
  MixKind kind = MixKind::none;
  float lambda = 1.f;                      // weight of a row's own image (and label)
  int box_y0 = 0, box_y1 = 0, box_x0 = 0, box_x1 = 0;  // cutmix box, half-open [y0, y1) x [x0, x1)
};

MixDecision draw_mix(const AugmentConfig& config, std::uint64_t batch_key, int height, int width);

// Mixes rows in place, row i with row batch-1-i (a middle row of an odd batch is
// left alone; it is its own partner).
void apply_mix(std::uint8_t* images, int batch, int channels, int height, int width, const MixDecision& mix);
// images: (B, C, H, W) uint8

// Soft targets (B, K) float for hard labels (B), mixed as `mix` says, smoothed by eps.
void fill_soft_targets(const std::int32_t* labels, int batch, int num_classes, const MixDecision& mix,
                       float label_smoothing, float* targets);
// The label a mixed row reports as its hard label.
std::int32_t dominant_label(const std::int32_t* labels, int batch, int row, const MixDecision& mix);

}  // namespace vitscale::data
