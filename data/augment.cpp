// augment.cpp — crop/flip, the per-sample pipeline, and batch mixup/cutmix with their soft targets.
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "data/randaugment.h"

namespace vitscale::data {

void check_augment_config(const AugmentConfig& a, int height, int width) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("augmentation: " + what); };
  if (a.crop_padding < 0 || a.crop_padding > std::min(height, width))
    bad("crop_padding " + std::to_string(a.crop_padding) + " outside [0, " + std::to_string(std::min(height, width)) +
        "]");
  if (a.randaugment_ops < 0 || a.randaugment_ops > 16)
    bad("randaugment_ops " + std::to_string(a.randaugment_ops) + " outside [0, 16]");
  if (a.randaugment_magnitude < 0 || a.randaugment_magnitude >= kRandAugmentBins)
    bad("randaugment_magnitude " + std::to_string(a.randaugment_magnitude) + " outside [0, 30]");
  if (!(a.mixup_alpha >= 0.f) || !(a.cutmix_alpha >= 0.f))
    bad("mixup_alpha / cutmix_alpha must be >= 0 (got " + std::to_string(a.mixup_alpha) + ", " +
        std::to_string(a.cutmix_alpha) + ")");
  if (!(a.mix_prob >= 0.f && a.mix_prob <= 1.f)) bad("mix_prob " + std::to_string(a.mix_prob) + " outside [0, 1]");
  if (!(a.switch_prob >= 0.f && a.switch_prob <= 1.f))
    bad("switch_prob " + std::to_string(a.switch_prob) + " outside [0, 1]");
  if (!(a.label_smoothing >= 0.f && a.label_smoothing < 1.f))
    bad("label_smoothing " + std::to_string(a.label_smoothing) + " outside [0, 1)");
}

void crop_flip(const std::uint8_t* src, int channels, int height, int width, int padding, CropFlip g,
               std::uint8_t* dst) {
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  // Source column of output column x is s(x) = dx - p + x (or dx - p + W-1-x flipped);
  // the output columns whose source lies inside [0, W):
  const int shift = g.dx - padding;
  const int x_begin = g.flip ? std::max(0, shift) : std::max(0, -shift);
  const int x_end = g.flip ? std::min(width, width + shift) : std::min(width, width - shift);
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y) {
      std::uint8_t* out = dst + c * plane + static_cast<std::size_t>(y) * width;  // (W)
      const int sy = y + g.dy - padding;
      if (sy < 0 || sy >= height || x_begin >= x_end) {
        std::memset(out, 0, static_cast<std::size_t>(width));
        continue;
      }
      const std::uint8_t* in = src + c * plane + static_cast<std::size_t>(sy) * width;  // (W)
      std::memset(out, 0, static_cast<std::size_t>(x_begin));
      if (!g.flip) {
        std::memcpy(out + x_begin, in + x_begin + shift, static_cast<std::size_t>(x_end - x_begin));
      } else {
        const std::uint8_t* last = in + shift + width - 1;  // source of output column 0
        for (int x = x_begin; x < x_end; ++x) out[x] = last[-x];
      }
      std::memset(out + x_end, 0, static_cast<std::size_t>(width - x_end));
    }
}

void augment_sample(const std::uint8_t* src, int channels, int height, int width, const AugmentConfig& config,
                    std::uint64_t sample_key, std::uint8_t* dst, AugmentScratch& scratch) {
  Rng rng(sample_key);
  CropFlip g;
  if (config.crop_padding > 0) {
    g.dy = static_cast<int>(rng.below(static_cast<std::uint64_t>(2 * config.crop_padding + 1)));
    g.dx = static_cast<int>(rng.below(static_cast<std::uint64_t>(2 * config.crop_padding + 1)));
  } else {
    g.dy = g.dx = 0;
  }
  g.flip = config.horizontal_flip && rng.coin(0.5f);
  crop_flip(src, channels, height, width, config.crop_padding, g, dst);
  if (config.randaugment_ops > 0)
    rand_augment(dst, channels, height, width, config.randaugment_ops, config.randaugment_magnitude, rng, scratch);
}

const char* mix_kind_name(MixKind kind) {
  switch (kind) {
    case MixKind::none: return "none";
    case MixKind::mixup: return "mixup";
    case MixKind::cutmix: return "cutmix";
  }
  return "?";
}

MixDecision draw_mix(const AugmentConfig& config, std::uint64_t batch_key, int height, int width) {
  MixDecision mix;
  if (!config.any_mixing()) return mix;
  Rng rng(batch_key);
  if (!rng.coin(config.mix_prob)) return mix;
  const bool both = config.mixup_alpha > 0.f && config.cutmix_alpha > 0.f;
  const bool cutmix = both ? rng.coin(config.switch_prob) : config.cutmix_alpha > 0.f;
  const double alpha = cutmix ? config.cutmix_alpha : config.mixup_alpha;
  const double lambda = rng.beta(alpha, alpha);
  if (!cutmix) {
    mix.kind = MixKind::mixup;
    mix.lambda = static_cast<float>(lambda);
    return mix;
  }
  // timm's rand_bbox: a box of side ratio sqrt(1 - lambda), centre uniform, clipped.
  const double ratio = std::sqrt(1.0 - lambda);
  const int cut_h = static_cast<int>(height * ratio), cut_w = static_cast<int>(width * ratio);
  const int cy = static_cast<int>(rng.below(static_cast<std::uint64_t>(height)));
  const int cx = static_cast<int>(rng.below(static_cast<std::uint64_t>(width)));
  mix.kind = MixKind::cutmix;
  mix.box_y0 = std::clamp(cy - cut_h / 2, 0, height);
  mix.box_y1 = std::clamp(cy + cut_h / 2, 0, height);
  mix.box_x0 = std::clamp(cx - cut_w / 2, 0, width);
  mix.box_x1 = std::clamp(cx + cut_w / 2, 0, width);
  const double area = static_cast<double>(mix.box_y1 - mix.box_y0) * (mix.box_x1 - mix.box_x0);
  mix.lambda = static_cast<float>(1.0 - area / (static_cast<double>(height) * width));
  return mix;
}

void apply_mix(std::uint8_t* images, int batch, int channels, int height, int width, const MixDecision& mix) {
  if (mix.kind == MixKind::none) return;
  const std::size_t plane = static_cast<std::size_t>(height) * width, image_bytes = plane * channels;
  const float lam = mix.lambda, rest = 1.f - mix.lambda;
  for (int i = 0; i < batch / 2; ++i) {
    std::uint8_t* a = images + static_cast<std::size_t>(i) * image_bytes;              // (C, H, W)
    std::uint8_t* b = images + static_cast<std::size_t>(batch - 1 - i) * image_bytes;  // (C, H, W)
    if (mix.kind == MixKind::mixup) {
      for (std::size_t k = 0; k < image_bytes; ++k) {
        const float va = a[k], vb = b[k];
        a[k] = static_cast<std::uint8_t>(std::min(lam * va + rest * vb + 0.5f, 255.f));
        b[k] = static_cast<std::uint8_t>(std::min(lam * vb + rest * va + 0.5f, 255.f));
      }
    } else {  // cutmix: swap the box between the pair
      const int box_w = mix.box_x1 - mix.box_x0;
      for (int c = 0; c < channels; ++c)
        for (int y = mix.box_y0; y < mix.box_y1; ++y) {
          const std::size_t at = c * plane + static_cast<std::size_t>(y) * width + mix.box_x0;
          std::swap_ranges(a + at, a + at + box_w, b + at);
        }
    }
  }
}

void fill_soft_targets(const std::int32_t* labels, int batch, int num_classes, const MixDecision& mix,
                       float label_smoothing, float* targets) {
  const float off = label_smoothing / static_cast<float>(num_classes), on = 1.f - label_smoothing + off;
  for (int i = 0; i < batch; ++i) {
    float* row = targets + static_cast<std::size_t>(i) * num_classes;  // (K)
    std::fill(row, row + num_classes, off);
    const int partner = batch - 1 - i;
    if (mix.kind == MixKind::none || partner == i) {
      row[labels[i]] = on;
    } else {
      // lam * t(y_i) + (1 - lam) * t(y_j); the eps/K floor is common to both terms.
      row[labels[i]] += mix.lambda * (on - off);
      row[labels[partner]] += (1.f - mix.lambda) * (on - off);
    }
  }
}

std::int32_t dominant_label(const std::int32_t* labels, int batch, int row, const MixDecision& mix) {
  if (mix.kind == MixKind::none) return labels[row];
  return mix.lambda >= 0.5f ? labels[row] : labels[batch - 1 - row];
}

}  // namespace vitscale::data
