// sampler.h — which dataset indices each rank sees, epoch by epoch.
//
// Each epoch the whole index set [0, N) is shuffled with a seeded Fisher-Yates
// (key: seed, epoch); the shuffled order is the same on every rank and for every
// world size. Rank r of w takes positions r, r + w, r + 2w, ... of it (strided,
// as torch's DistributedSampler). What happens to the N mod w leftover positions
// is the tail rule:
//   drop    (training) every rank gets floor(N / w) samples; the last N mod w
//           positions of the epoch's order are skipped (different samples each
//           epoch when shuffling). The loader then also drops the last partial
//           batch, so every rank runs the same number of whole batches and one
//           global step s covers positions [s*w*B, (s+1)*w*B) of the order:
//           the same samples as one rank with batch w*B.
//   pad     every rank gets ceil(N / w); the order is extended by wrapping to its
//           start (torch's drop_last=False), so a few samples appear twice.
//   uneven  (evaluation) nothing dropped, nothing repeated: rank r gets
//           ceil((N - r) / w) samples, ranks differ by at most one, and the
//           ranks' shares are disjoint and cover [0, N) exactly once, so that
//           summing correct-counts and loss-sums over ranks gives the exact
//           full-set result.
// With shuffle off the order is 0, 1, ..., N-1.
#pragma once

#include <cstdint>
#include <vector>

namespace vitscale::data {

enum class ShardTail { drop, pad, uneven };
const char* shard_tail_name(ShardTail tail);

// The epoch's shuffled order of [0, N), identical on every rank (identity when !shuffle).
std::vector<std::int64_t> epoch_order(std::int64_t dataset_size, std::uint64_t seed, std::int64_t epoch, bool shuffle);

class DistributedSampler {
 public:
  // Throws std::invalid_argument for N < 1, w < 1, r outside [0, w), or a drop
  // rule that would leave a rank nothing (N < w).
  DistributedSampler(std::int64_t dataset_size, int world_size, int rank, std::uint64_t seed, bool shuffle,
                     ShardTail tail);

  std::int64_t dataset_size() const { return dataset_size_; }
  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  ShardTail tail() const { return tail_; }
  bool shuffle() const { return shuffle_; }
  // Samples this rank sees per epoch.
  std::int64_t num_samples() const { return num_samples_; }

  // Position in the epoch's order of this rank's i-th sample: i * w + r (wrapped mod N under pad).
  std::int64_t position(std::int64_t i) const;
  // This rank's dataset indices for the epoch, in the order it visits them. (num_samples())
  std::vector<std::int64_t> indices(std::int64_t epoch) const;
  // Same, from an epoch_order() already computed (saves the shuffle when it is cached).
  std::vector<std::int64_t> indices_from_order(const std::vector<std::int64_t>& order) const;

 private:
  std::int64_t dataset_size_;
  int world_size_, rank_;
  std::uint64_t seed_;
  bool shuffle_;
  ShardTail tail_;
  std::int64_t num_samples_;
};

// Evaluation sharding in one call: rank r's indices r, r + w, ... < N (uneven tail, no shuffle).
std::vector<std::int64_t> eval_shard_indices(std::int64_t dataset_size, int world_size, int rank);

}  // namespace vitscale::data
