// test_sampler.cpp — rank shares are disjoint, cover the set by the documented tail rule,
// and change with the epoch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "data/sampler.h"

using namespace vitscale::data;

TEST_CASE("epoch order is a seeded permutation that changes with the epoch", "[sampler]") {
  const auto a = epoch_order(1000, 7, 0, true);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 1000; ++i) REQUIRE(sorted[static_cast<std::size_t>(i)] == i);
  CHECK(epoch_order(1000, 7, 0, true) == a);
  CHECK(epoch_order(1000, 7, 1, true) != a);
  CHECK(epoch_order(1000, 8, 0, true) != a);
  const auto identity = epoch_order(5, 7, 3, false);
  CHECK(identity == std::vector<std::int64_t>{0, 1, 2, 3, 4});
}

TEST_CASE("drop tail: equal disjoint shares, N mod w left out, new shares each epoch", "[sampler]") {
  for (std::int64_t n : {10, 97, 1000}) {
    for (int w : {1, 2, 3, 4, 7, 8}) {
      if (n < w) continue;
      INFO("N=" << n << " w=" << w);
      std::set<std::int64_t> seen;
      std::vector<std::vector<std::int64_t>> epoch0(static_cast<std::size_t>(w));
      for (int r = 0; r < w; ++r) {
        DistributedSampler s(n, w, r, 123, true, ShardTail::drop);
        const auto idx = s.indices(0);
        REQUIRE(static_cast<std::int64_t>(idx.size()) == n / w);
        for (auto i : idx) {
          REQUIRE(i >= 0);
          REQUIRE(i < n);
          REQUIRE(seen.insert(i).second);  // disjoint
        }
        epoch0[static_cast<std::size_t>(r)] = idx;
        if (n / w > 1) CHECK(s.indices(1) != idx);  // changes with the epoch
        CHECK(s.indices(0) == idx);                  // and is reproducible
      }
      CHECK(static_cast<std::int64_t>(seen.size()) == (n / w) * w);  // covers all but N mod w
      // The dropped ones are exactly the last N mod w positions of the epoch's order.
      const auto order = epoch_order(n, 123, 0, true);
      for (std::int64_t p = (n / w) * w; p < n; ++p) CHECK(seen.count(order[static_cast<std::size_t>(p)]) == 0);
    }
  }
}

TEST_CASE("uneven tail (evaluation): disjoint, covers every index exactly once", "[sampler]") {
  for (std::int64_t n : {1, 10, 97, 10000}) {
    for (int w : {1, 2, 3, 4, 7, 8, 16}) {
      INFO("N=" << n << " w=" << w);
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      std::int64_t largest = 0, smallest = n;
      for (int r = 0; r < w; ++r) {
        const auto idx = eval_shard_indices(n, w, r);
        largest = std::max<std::int64_t>(largest, static_cast<std::int64_t>(idx.size()));
        smallest = std::min<std::int64_t>(smallest, static_cast<std::int64_t>(idx.size()));
        for (auto i : idx) ++hits[static_cast<std::size_t>(i)];
      }
      for (int h : hits) REQUIRE(h == 1);
      CHECK(largest - smallest <= 1);
    }
  }
}

TEST_CASE("pad tail: ceil(N / w) each, every index at least once", "[sampler]") {
  for (int w : {2, 3, 7}) {
    const std::int64_t n = 20;
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    for (int r = 0; r < w; ++r) {
      DistributedSampler s(n, w, r, 5, true, ShardTail::pad);
      const auto idx = s.indices(2);
      CHECK(static_cast<std::int64_t>(idx.size()) == (n + w - 1) / w);
      for (auto i : idx) ++hits[static_cast<std::size_t>(i)];
    }
    for (int h : hits) CHECK(h >= 1);
  }
}

TEST_CASE("a global step covers the same samples for any world size", "[sampler]") {
  // Step s of w ranks with batch B takes positions [s*w*B, (s+1)*w*B) of the epoch's order.
  const std::int64_t n = 1000, global_batch = 48;
  const auto order = epoch_order(n, 9, 4, true);
  for (int w : {1, 2, 3, 4, 6, 8}) {
    const std::int64_t B = global_batch / w;
    std::set<std::int64_t> step2;
    for (int r = 0; r < w; ++r) {
      const auto idx = DistributedSampler(n, w, r, 9, true, ShardTail::drop).indices(4);
      for (std::int64_t j = 0; j < B; ++j) step2.insert(idx[static_cast<std::size_t>(2 * B + j)]);
    }
    const std::set<std::int64_t> expected(order.begin() + 2 * global_batch, order.begin() + 3 * global_batch);
    CHECK(step2 == expected);
  }
}

TEST_CASE("sampler refuses impossible configurations", "[sampler]") {
  CHECK_THROWS_AS(DistributedSampler(10, 2, 2, 0, true, ShardTail::drop), std::invalid_argument);
  CHECK_THROWS_AS(DistributedSampler(0, 1, 0, 0, true, ShardTail::drop), std::invalid_argument);
  CHECK_THROWS_AS(DistributedSampler(3, 4, 0, 0, true, ShardTail::drop), std::invalid_argument);
  CHECK_NOTHROW(DistributedSampler(3, 4, 3, 0, false, ShardTail::uneven));
  CHECK(DistributedSampler(3, 4, 3, 0, false, ShardTail::uneven).num_samples() == 0);
}
