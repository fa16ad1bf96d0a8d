// batch.h — one batch as the model receives it, and the pure function that fills it.
//
// A Batch lives in memory obtained from a HostAllocator (pinned under CUDA, so
// the backend can copy it to the device asynchronously; 64-byte aligned on the
// CPU). Its contents are a pure function of (dataset, BatchSpec, epoch, step):
// BatchMaker::make computes them, the loader's worker threads call it, and so
// does the synchronous path tests and resuming use — same bytes either way.
//
// How (epoch, step) picks samples (see sampler.h for the tail rules):
//   train: the epoch's seeded shuffle, rank r's strided share, drop tail; step s
//          takes the rank's samples [s*B, (s+1)*B); partial last batch dropped,
//          so steps_per_epoch = floor(floor(N / w) / B), equal on every rank.
//          Sample i of the rank sits at position p = i*w + r of the epoch's
//          order; its augmentation draws from Rng(seed, epoch, p): independent of
//          threads and (p being a position in the shared order) of world size.
//          Mixing draws from Rng(seed, epoch, s*w + r).
//   eval:  no shuffle, no augmentation, no mixing, no smoothing; rank r gets
//          indices r, r+w, ... (uneven tail: nothing dropped or repeated);
//          steps_per_epoch = ceil(ceil(N / w) / B) on every rank, so a rank's
//          last batch may be partial or even empty: rows [size, B) are padding
//          (zero pixels, label -1, index -1, zero targets).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace vitscale::data {

enum class LoaderMode { train, eval };

// Everything that decides a batch's bytes.
struct BatchSpec {
  int batch_size = 64;           // B, per rank (the micro-batch)
  int world_size = 1;            // w
  int rank = 0;                  // r
  std::uint64_t seed = 0;
  LoaderMode mode = LoaderMode::train;
  bool shuffle = true;           // train only (eval never shuffles)
  AugmentConfig augment;         // train only, label_smoothing included
};

struct Batch {
  std::int64_t epoch = 0, step = 0;
  int capacity = 0;  // B, rows allocated
  int size = 0;      // valid rows; rows [size, capacity) are padding (eval's last batch only)
  int channels = 0, height = 0, width = 0, num_classes = 0;
  vitscale::Buffer images;              // (B, C, H, W) uint8
  vitscale::Buffer soft_targets;        // (B, K) float, rows sum to 1 (0 for padding)
  std::vector<std::int32_t> labels;     // (B) hard label (the dominant one if mixed); -1 padding
  std::vector<std::int32_t> source_labels;  // (B) each row's own label before mixing; -1 padding
  std::vector<std::int64_t> indices;    // (B) dataset index of each row; -1 padding
  MixDecision mix;                      // row i mixed with row B-1-i, weight mix.lambda

  const std::uint8_t* image_data() const { return images.as<std::uint8_t>(); }
  const float* target_data() const { return soft_targets.as<float>(); }
  vitscale::TensorView images_view() const;        // u8 (B, C, H, W)
  vitscale::TensorView soft_targets_view() const;  // f32 (B, K)
};

class BatchMaker {
 public:
  // Keeps a reference to `dataset`: it must outlive the maker. Throws
  // std::invalid_argument when the spec cannot work (e.g. fewer samples per
  // rank than one batch in training).
  BatchMaker(const Dataset& dataset, const BatchSpec& spec);

  const Dataset& dataset() const { return dataset_; }
  const BatchSpec& spec() const { return spec_; }
  const DistributedSampler& sampler() const { return sampler_; }
  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }

  // A batch with room for B rows, its buffers from `allocator` (empty: aligned host memory).
  Batch allocate(const vitscale::HostAllocator& allocator = {}) const;

  // Fills `out` (allocated by allocate()) with batch `step` of `epoch`.
  // Thread-safe; `scratch` is per-thread working memory, grown as needed.
  void make(std::int64_t epoch, std::int64_t step, Batch& out, AugmentScratch& scratch) const;

 private:
  std::shared_ptr<const std::vector<std::int64_t>> order_for(std::int64_t epoch) const;

  const Dataset& dataset_;
  BatchSpec spec_;
  DistributedSampler sampler_;
  std::int64_t steps_per_epoch_ = 0;
  // The last two epochs' shuffled orders, shared by the worker threads.
  mutable std::mutex order_mutex_;
  mutable std::vector<std::pair<std::int64_t, std::shared_ptr<const std::vector<std::int64_t>>>> order_cache_;
};

}  // namespace vitscale::data
