// batch.cpp — BatchMaker: sample selection, per-sample augmentation, mixing and targets.
#include "data/batch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "data/rng.h"

namespace vitscale::data {

vitscale::TensorView Batch::images_view() const {
  return vitscale::TensorView(images.get(), vitscale::DType::u8, {capacity, channels, height, width});
}

vitscale::TensorView Batch::soft_targets_view() const {
  return vitscale::TensorView(soft_targets.get(), vitscale::DType::f32, {capacity, num_classes});
}

namespace {

DistributedSampler make_sampler(const Dataset& d, const BatchSpec& s) {
  validate(d);
  if (s.batch_size < 1) throw std::invalid_argument("loader: batch_size " + std::to_string(s.batch_size) + " < 1");
  const bool train = s.mode == LoaderMode::train;
  return DistributedSampler(d.count, s.world_size, s.rank, s.seed, train && s.shuffle,
                            train ? ShardTail::drop : ShardTail::uneven);
}

}  // namespace

BatchMaker::BatchMaker(const Dataset& dataset, const BatchSpec& spec)
    : dataset_(dataset), spec_(spec), sampler_(make_sampler(dataset, spec)) {
  check_augment_config(spec.augment, dataset.height, dataset.width);
  const std::int64_t B = spec.batch_size, w = spec.world_size;
  if (spec.mode == LoaderMode::train) {
    steps_per_epoch_ = sampler_.num_samples() / B;
    if (steps_per_epoch_ == 0)
      throw std::invalid_argument("loader: " + dataset.name + "/" + split_name(dataset.split) + " has " +
                                  std::to_string(dataset.count) + " images, " +
                                  std::to_string(sampler_.num_samples()) + " per rank on " + std::to_string(w) +
                                  " ranks: not one whole batch of " + std::to_string(B));
  } else {
    const std::int64_t largest_share = (dataset.count + w - 1) / w;
    steps_per_epoch_ = (largest_share + B - 1) / B;
  }
}

Batch BatchMaker::allocate(const vitscale::HostAllocator& allocator) const {
  const auto alloc = allocator ? allocator : vitscale::HostAllocator(vitscale::allocate_host_aligned);
  Batch b;
  b.capacity = spec_.batch_size;
  b.channels = dataset_.channels;
  b.height = dataset_.height;
  b.width = dataset_.width;
  b.num_classes = dataset_.num_classes;
  const std::size_t B = static_cast<std::size_t>(b.capacity);
  b.images = alloc(B * dataset_.image_bytes());  // (B, C, H, W) uint8
  b.soft_targets = alloc(B * static_cast<std::size_t>(b.num_classes) * sizeof(float));  // (B, K) float
  if (!b.images || !b.soft_targets) throw std::runtime_error("loader: host allocator returned no memory for a batch");
  b.labels.assign(B, -1);
  b.source_labels.assign(B, -1);
  b.indices.assign(B, -1);
  return b;
}

std::shared_ptr<const std::vector<std::int64_t>> BatchMaker::order_for(std::int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(order_mutex_);
    for (const auto& [e, order] : order_cache_)
      if (e == epoch) return order;
  }
  // Shuffle outside the lock; two threads may both compute it (same result).
  auto order = std::make_shared<const std::vector<std::int64_t>>(
      epoch_order(dataset_.count, spec_.seed, epoch, sampler_.shuffle()));
  std::lock_guard<std::mutex> lock(order_mutex_);
  if (order_cache_.size() >= 2) order_cache_.erase(order_cache_.begin());
  order_cache_.emplace_back(epoch, order);
  return order;
}

void BatchMaker::make(std::int64_t epoch, std::int64_t step, Batch& out, AugmentScratch& scratch) const {
  if (step < 0 || step >= steps_per_epoch_ || epoch < 0)
    throw std::out_of_range("loader: batch (epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                            ") outside [0, " + std::to_string(steps_per_epoch_) + ") steps per epoch");
  if (out.capacity != spec_.batch_size || out.channels != dataset_.channels || out.height != dataset_.height ||
      out.width != dataset_.width || out.num_classes != dataset_.num_classes || !out.images || !out.soft_targets)
    throw std::invalid_argument("loader: batch was not allocated for this loader");
  const bool train = spec_.mode == LoaderMode::train;
  const int B = spec_.batch_size, C = dataset_.channels, H = dataset_.height, W = dataset_.width;
  const int K = dataset_.num_classes;
  const std::size_t image_bytes = dataset_.image_bytes();
  std::uint8_t* images = out.images.as<std::uint8_t>();  // (B, C, H, W)

  const auto order = order_for(train ? epoch : 0);
  const std::int64_t first = step * B;  // this rank's sample number of row 0
  const int valid = static_cast<int>(std::clamp<std::int64_t>(sampler_.num_samples() - first, 0, B));
  out.epoch = epoch;
  out.step = step;
  out.size = valid;
  for (int j = 0; j < B; ++j) {
    std::uint8_t* dst = images + static_cast<std::size_t>(j) * image_bytes;  // (C, H, W)
    if (j >= valid) {
      std::memset(dst, 0, image_bytes);
      out.indices[static_cast<std::size_t>(j)] = -1;
      out.source_labels[static_cast<std::size_t>(j)] = -1;
      continue;
    }
    const std::int64_t position = sampler_.position(first + j);
    const std::int64_t index = (*order)[static_cast<std::size_t>(position)];
    out.indices[static_cast<std::size_t>(j)] = index;
    out.source_labels[static_cast<std::size_t>(j)] = dataset_.labels[static_cast<std::size_t>(index)];
    if (train && spec_.augment.any_per_sample()) {
      const std::uint64_t key =
          derive_key(spec_.seed, RngStream::sample, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(position));
      augment_sample(dataset_.image(index), C, H, W, spec_.augment, key, dst, scratch);
    } else {
      std::memcpy(dst, dataset_.image(index), image_bytes);
    }
  }

  out.mix = MixDecision{};
  if (train && spec_.augment.any_mixing()) {
    const std::uint64_t global_batch = static_cast<std::uint64_t>(step) * spec_.world_size + spec_.rank;
    out.mix = draw_mix(spec_.augment, derive_key(spec_.seed, RngStream::batch_mix, static_cast<std::uint64_t>(epoch),
                                                 global_batch), H, W);
    apply_mix(images, valid, C, H, W, out.mix);
  }

  float* targets = out.soft_targets.as<float>();  // (B, K)
  fill_soft_targets(out.source_labels.data(), valid, K, out.mix, train ? spec_.augment.label_smoothing : 0.f, targets);
  std::fill(targets + static_cast<std::size_t>(valid) * K, targets + static_cast<std::size_t>(B) * K, 0.f);
  for (int j = 0; j < B; ++j)
    out.labels[static_cast<std::size_t>(j)] = j < valid ? dominant_label(out.source_labels.data(), valid, j, out.mix) : -1;
}

}  // namespace vitscale::data
