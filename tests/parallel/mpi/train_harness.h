// train_harness.h — a tiny ViT trained K steps on a deterministic synthetic
// global batch, either data-parallel (this rank's slice, through DataParallel)
// or as the single-process reference (the whole global batch in one
// micro-batch, plain AdamWOptimizer): the oracle the multi-rank runs must match.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel/data_parallel.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/vit_model.h"

namespace vitscale::testing {

inline ViTConfig tiny_vit() {
  ViTConfig c;
  c.image_size = 8;
  c.channels = 3;
  c.patch_size = 4;
  c.dim = 32;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 64;
  c.num_classes = 10;
  return c;
}

inline AdamWHyper test_hyper(int step) {
  AdamWHyper h;
  h.lr = 1e-3f;
  h.weight_decay = 0.05f;
  h.max_grad_norm = 1.0f;  // exercises the global norm (all-reduced under ZeRO-1)
  h.step = step;
  return h;
}

// Images and one-hot targets of samples [first, first + count): the same bytes
// on every rank and in every run.
struct SyntheticBatch {
  std::vector<std::uint8_t> images;
  std::vector<float> targets;
};

inline SyntheticBatch make_batch(const ViTConfig& c, std::int64_t first, int count) {
  SyntheticBatch b;
  const std::int64_t pixels = static_cast<std::int64_t>(c.channels) * c.image_size * c.image_size;
  b.images.resize(static_cast<std::size_t>(pixels * count));
  b.targets.assign(static_cast<std::size_t>(count) * static_cast<std::size_t>(c.num_classes), 0.f);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t sample = static_cast<std::uint64_t>(first + i);
    const int label = static_cast<int>(sample % static_cast<std::uint64_t>(c.num_classes));
    for (std::int64_t p = 0; p < pixels; ++p) {
      std::uint64_t h = (sample * 0x9E3779B97F4A7C15ull) ^ (static_cast<std::uint64_t>(p) * 0xC2B2AE3D27D4EB4Full);
      h ^= h >> 29;
      h *= 0xBF58476D1CE4E5B9ull;
      h ^= h >> 32;
      // A class-dependent bias so the loss has something to learn.
      const int v = static_cast<int>(h % 160) + (p % c.num_classes == label ? 90 : 0);
      b.images[static_cast<std::size_t>(i * pixels + p)] = static_cast<std::uint8_t>(std::min(v, 255));
    }
    b.targets[static_cast<std::size_t>(i * c.num_classes + label)] = 1.f;
  }
  return b;
}

struct RunShape {
  int world = 1, rank = 0;
  int micro_batch = 4;   // m, per rank
  int accumulation = 1;  // k
  int steps = 3;         // K
  int global_batch() const { return world * micro_batch * accumulation; }
};

// One data-parallel optimizer step on this rank's slice of global batch `step`.
inline CommTiming data_parallel_step(ViTModel& model, DataParallel& dp, const RunShape& s, int step) {
  const float scale = data_parallel_grad_scale(s.micro_batch, s.accumulation, s.world);
  model.zero_grads();
  for (int i = 0; i < s.accumulation; ++i) {
    dp.begin_micro_step(i == s.accumulation - 1);
    const std::int64_t first = static_cast<std::int64_t>(step) * s.global_batch() +
                               static_cast<std::int64_t>(s.rank) * s.micro_batch * s.accumulation +
                               static_cast<std::int64_t>(i) * s.micro_batch;
    const SyntheticBatch b = make_batch(model.config(), first, s.micro_batch);
    model.upload_batch(b.images.data(), b.targets.data(), s.micro_batch);
    model.forward(scale);
    model.backward(dp.listener());
  }
  return dp.finish();
}

// The reference: one process, the whole global batch as one micro-batch.
struct Reference {
  ViTModel model;
  AdamWOptimizer adamw;
  RunShape shape;

  Reference(Backend& backend, const RunShape& s, std::uint64_t seed)
      : model(tiny_vit(), backend, ModelShape{s.global_batch(), 0}, ImageNorm{}),
        adamw(backend, model.table()),
        shape(s) {
    model.init_parameters(seed);
  }
  // Forward + backward of global batch `step` (gradients in model.grads()).
  void gradients(int step) {
    model.zero_grads();
    const SyntheticBatch b =
        make_batch(model.config(), static_cast<std::int64_t>(step) * shape.global_batch(), shape.global_batch());
    model.upload_batch(b.images.data(), b.targets.data(), shape.global_batch());
    model.forward(1.0f / static_cast<float>(shape.global_batch()));
    model.backward();
  }
  void update(int step) {
    adamw.step(model.params(), model.grads(), test_hyper(step + 1));
    model.sync_compute_params();
  }
};

inline std::vector<float> host_copy(Backend& backend, TensorView v) {
  std::vector<float> out(static_cast<std::size_t>(v.numel()));
  backend.copy_to_host(out.data(), v.data, v.bytes());
  return out;
}

// ||a − b|| / ||b|| over the whole vector.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    diff += d * d;
    ref += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  if (a.size() != b.size()) return INFINITY;
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

}  // namespace vitscale::testing
