// sampler.cpp — the seeded epoch shuffle and the strided rank shares (rules in sampler.h).
#include "data/sampler.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "data/rng.h"

namespace vitscale::data {

const char* shard_tail_name(ShardTail tail) {
  switch (tail) {
    case ShardTail::drop: return "drop";
    case ShardTail::pad: return "pad";
    case ShardTail::uneven: return "uneven";
  }
  return "?";
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!shuffle) return order;
  // Fisher-Yates from the back; below() keeps it independent of <random>.
  Rng rng(derive_key(seed, RngStream::shuffle, static_cast<std::uint64_t>(epoch)));
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

DistributedSampler::DistributedSampler(std::int64_t dataset_size, int world_size, int rank, std::uint64_t seed,
                                       bool shuffle, ShardTail tail)
    : dataset_size_(dataset_size), world_size_(world_size), rank_(rank), seed_(seed), shuffle_(shuffle), tail_(tail) {
  const std::string who = "DistributedSampler(N=" + std::to_string(dataset_size) + ", world_size=" +
                          std::to_string(world_size) + ", rank=" + std::to_string(rank) + ")";
  if (dataset_size < 1) throw std::invalid_argument(who + ": empty dataset");
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument(who + ": rank must be in [0, world_size)");
  switch (tail) {
    case ShardTail::drop: num_samples_ = dataset_size / world_size; break;
    case ShardTail::pad: num_samples_ = (dataset_size + world_size - 1) / world_size; break;
    case ShardTail::uneven: num_samples_ = (dataset_size - rank + world_size - 1) / world_size; break;
  }
  if (tail == ShardTail::drop && num_samples_ == 0)
    throw std::invalid_argument(who + ": fewer samples than ranks, drop_last leaves every rank nothing");
}

std::int64_t DistributedSampler::position(std::int64_t i) const {
  const std::int64_t p = i * world_size_ + rank_;
  return tail_ == ShardTail::pad ? p % dataset_size_ : p;
}

std::vector<std::int64_t> DistributedSampler::indices_from_order(const std::vector<std::int64_t>& order) const {
  if (static_cast<std::int64_t>(order.size()) != dataset_size_)
    throw std::invalid_argument("DistributedSampler: order of " + std::to_string(order.size()) +
                                " entries for a dataset of " + std::to_string(dataset_size_));
  std::vector<std::int64_t> out(static_cast<std::size_t>(num_samples_));
  for (std::int64_t i = 0; i < num_samples_; ++i)
    out[static_cast<std::size_t>(i)] = order[static_cast<std::size_t>(position(i))];
  return out;
}

std::vector<std::int64_t> DistributedSampler::indices(std::int64_t epoch) const {
  return indices_from_order(epoch_order(dataset_size_, seed_, epoch, shuffle_));
}

std::vector<std::int64_t> eval_shard_indices(std::int64_t dataset_size, int world_size, int rank) {
  return DistributedSampler(dataset_size, world_size, rank, 0, false, ShardTail::uneven).indices(0);
}

}  // namespace vitscale::data
