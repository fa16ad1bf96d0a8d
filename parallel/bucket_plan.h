// bucket_plan.h — which gradients travel together, and in what order.
//
// The hand-written backward finishes the flat gradient buffer back to front
// (param_table.h), so a bucket is a contiguous slice of it and the reducer can
// hand that slice straight to the engine: no copies into bucket storage, as
// PyTorch's DDP achieves with gradient views. Buckets are formed walking the
// parameters from the last to the first, adding each whole parameter while the
// bucket stays within its byte cap (a parameter larger than the cap gets a
// bucket of its own). Bucket 0 holds the head and is launched first; the last
// bucket starts at flat offset 0. Together the buckets tile [0, total) exactly,
// alignment padding included, so every element is reduced once.
//
// ZeRO-1's shard layout lives here too: rank r owns flat elements
// [r·S, min((r+1)·S, total)), S = ceil(total / W) rounded up to 16 elements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/param_table.h"

namespace vitscale {

struct Bucket {
  std::int64_t begin = 0;  // flat element offset of the bucket's first element
  std::int64_t count = 0;  // elements, padding included
  int first_param = 0;     // lowest parameter index in the bucket
  int last_param = 0;      // highest parameter index
  std::int64_t end() const { return begin + count; }
};

struct BucketPlan {
  std::vector<Bucket> buckets;  // launch order: highest offsets first
  std::int64_t total = 0;
  std::string describe(const ParamTable& table) const;  // one line per bucket
};

// bucket_bytes: the cap for every bucket; first_bucket_bytes: the cap for
// bucket 0 (0: the same), which PyTorch keeps small so that communication
// starts as early as possible. Gradients are f32 (4 bytes an element).
BucketPlan plan_buckets(const ParamTable& table, std::size_t bucket_bytes, std::size_t first_bucket_bytes = 0);

struct ShardLayout {
  int world = 1;
  std::int64_t total = 0;
  std::int64_t shard = 0;  // S: elements per rank (the last rank may own fewer, or none)

  ShardLayout() = default;
  ShardLayout(std::int64_t total, int world);
  std::int64_t begin(int rank) const;
  std::int64_t count(int rank) const;
  // Per-rank element counts of the flat range [begin, begin + count).
  std::vector<std::int64_t> split(std::int64_t begin, std::int64_t count) const;
  std::vector<std::int64_t> counts() const { return split(0, total); }
};

}  // namespace vitscale
