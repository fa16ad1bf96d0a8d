#include "parallel/bucket_plan.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace vitscale {

BucketPlan plan_buckets(const ParamTable& table, std::size_t bucket_bytes, std::size_t first_bucket_bytes) {
  if (bucket_bytes == 0) throw std::invalid_argument("reduce_bucket_size must be positive");
  if (first_bucket_bytes == 0) first_bucket_bytes = bucket_bytes;
  const auto& ps = table.params();
  BucketPlan plan;
  plan.total = table.total_numel();
  if (ps.empty()) return plan;

  // Walk parameters from the last; a bucket's bytes are counted over its
  // parameters, its slice reaches up to where the bucket above it begins.
  std::int64_t top = plan.total;  // end of the next bucket's slice
  std::size_t bytes = 0;
  int hi = static_cast<int>(ps.size()) - 1;  // highest parameter of the open bucket
  auto close = [&](int lo) {
    const std::int64_t begin = lo == 0 ? 0 : ps[static_cast<std::size_t>(lo)].offset;
    plan.buckets.push_back(Bucket{begin, top - begin, lo, hi});
    top = begin;
    hi = lo - 1;
    bytes = 0;
  };
  for (int i = hi; i >= 0; --i) {
    const std::size_t b = static_cast<std::size_t>(ps[static_cast<std::size_t>(i)].numel) * sizeof(float);
    const std::size_t cap = plan.buckets.empty() ? first_bucket_bytes : bucket_bytes;
    if (bytes > 0 && bytes + b > cap) close(i + 1);
    bytes += b;
  }
  close(0);
  return plan;
}

std::string BucketPlan::describe(const ParamTable& table) const {
  std::ostringstream s;
  char line[256];
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const Bucket& b = buckets[i];
    std::snprintf(line, sizeof line, "  bucket %zu: %lld elements (%.2f MiB), %s .. %s\n", i,
                  static_cast<long long>(b.count), static_cast<double>(b.count) * 4.0 / (1024.0 * 1024.0),
                  table.params()[static_cast<std::size_t>(b.last_param)].name.c_str(),
                  table.params()[static_cast<std::size_t>(b.first_param)].name.c_str());
    s << line;
  }
  return s.str();
}

ShardLayout::ShardLayout(std::int64_t total_elements, int world_size) : world(world_size), total(total_elements) {
  if (world < 1) throw std::invalid_argument("shard layout: world size " + std::to_string(world) + " < 1");
  constexpr std::int64_t kAlign = 16;  // keep every shard 64-byte aligned, like the parameter table
  shard = (total + world - 1) / world;
  shard = (shard + kAlign - 1) / kAlign * kAlign;
}

std::int64_t ShardLayout::begin(int rank) const { return std::min(total, shard * rank); }

std::int64_t ShardLayout::count(int rank) const { return std::min(total, shard * (rank + 1)) - begin(rank); }

std::vector<std::int64_t> ShardLayout::split(std::int64_t lo, std::int64_t n) const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(world), 0);
  for (int r = 0; r < world; ++r) {
    const std::int64_t a = std::max(lo, begin(r)), b = std::min(lo + n, begin(r) + count(r));
    out[static_cast<std::size_t>(r)] = std::max<std::int64_t>(0, b - a);
  }
  return out;
}

}  // namespace vitscale
