// Bucket plans: reverse order, contiguous tiling of the gradient buffer, byte
// caps from one parameter per bucket to everything in one; ZeRO-1 shards.
#include "parallel/bucket_plan.h"
#include "parallel/comm_timing.h"

#include <catch2/catch.hpp>

using namespace vitscale;

namespace {

ViTConfig tiny() {
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

void check_tiling(const BucketPlan& plan) {
  REQUIRE(!plan.buckets.empty());
  std::int64_t top = plan.total;
  for (const Bucket& b : plan.buckets) {
    CHECK(b.end() == top);  // launch order walks the buffer back to front
    CHECK(b.count > 0);
    CHECK(b.first_param <= b.last_param);
    top = b.begin;
  }
  CHECK(top == 0);
}

}  // namespace

TEST_CASE("buckets tile the gradient buffer from the head down to the embedding", "[parallel][buckets]") {
  const ParamTable table(tiny());
  const BucketPlan plan = plan_buckets(table, 16 * 1024);
  check_tiling(plan);
  CHECK(plan.buckets.front().last_param == table.head_b);
  CHECK(plan.buckets.back().first_param == 0);
  CHECK(plan.buckets.size() > 1);
}

TEST_CASE("a cap below any parameter gives one bucket per parameter", "[parallel][buckets]") {
  const ParamTable table(tiny());
  const BucketPlan plan = plan_buckets(table, 1);
  check_tiling(plan);
  REQUIRE(plan.buckets.size() == table.params().size());
  for (std::size_t i = 0; i < plan.buckets.size(); ++i) {
    const int p = static_cast<int>(table.params().size() - 1 - i);
    CHECK(plan.buckets[i].first_param == p);
    CHECK(plan.buckets[i].last_param == p);
  }
}

TEST_CASE("a cap above the model gives a single bucket", "[parallel][buckets]") {
  const ParamTable table(tiny());
  const BucketPlan plan = plan_buckets(table, std::size_t{1} << 40);
  check_tiling(plan);
  REQUIRE(plan.buckets.size() == 1);
  CHECK(plan.buckets[0].count == table.total_numel());
}

TEST_CASE("buckets respect the byte cap unless one parameter exceeds it", "[parallel][buckets]") {
  const ParamTable table(tiny());
  for (std::size_t cap : {std::size_t{256}, std::size_t{4096}, std::size_t{20000}}) {
    const BucketPlan plan = plan_buckets(table, cap);
    check_tiling(plan);
    for (const Bucket& b : plan.buckets) {
      std::size_t bytes = 0;
      for (int p = b.first_param; p <= b.last_param; ++p)
        bytes += static_cast<std::size_t>(table.params()[static_cast<std::size_t>(p)].numel) * 4;
      if (b.first_param != b.last_param) CHECK(bytes <= cap);
    }
  }
}

TEST_CASE("the first bucket can be capped smaller so communication starts early", "[parallel][buckets]") {
  const ParamTable table(tiny());
  const BucketPlan plan = plan_buckets(table, std::size_t{1} << 40, 64 * 4);
  check_tiling(plan);
  REQUIRE(plan.buckets.size() == 2);
  CHECK(plan.buckets[0].last_param == table.head_b);
  CHECK(plan.buckets[0].count < table.total_numel() / 4);
}

TEST_CASE("a zero bucket size is refused", "[parallel][buckets]") {
  const ParamTable table(tiny());
  CHECK_THROWS_WITH(plan_buckets(table, 0), Catch::Contains("reduce_bucket_size"));
}

TEST_CASE("ZeRO-1 shards cover the buffer once, aligned, the last rank possibly short", "[parallel][zero1]") {
  for (int world : {1, 2, 3, 5, 8}) {
    const ShardLayout l(1000, world);
    std::int64_t sum = 0;
    for (int r = 0; r < world; ++r) {
      CHECK(l.begin(r) % 16 == 0);
      CHECK(l.count(r) >= 0);
      sum += l.count(r);
    }
    CHECK(sum == 1000);
    CHECK(l.begin(0) == 0);
    // A range split over ranks: pieces sum to the range.
    for (auto [lo, n] : {std::pair<std::int64_t, std::int64_t>{0, 1000}, {10, 500}, {333, 1}, {999, 1}, {400, 0}}) {
      std::int64_t total = 0;
      for (std::int64_t c : l.split(lo, n)) total += c;
      CHECK(total == n);
    }
  }
  const ShardLayout three(1000, 3);  // S = 336
  CHECK(three.shard == 336);
  CHECK(three.split(300, 100) == std::vector<std::int64_t>{36, 64, 0});
  const ShardLayout many(20, 4);  // S = 16: ranks 2 and 3 own nothing
  CHECK(many.counts() == std::vector<std::int64_t>{16, 4, 0, 0});
}

TEST_CASE("communication timing: overlap ratio and its one-line form", "[parallel][timing]") {
  CommTiming t;
  CHECK(t.overlap_ratio() == 0.0);  // nothing communicated
  t.reduce_s = 0.010;
  t.exposed_s = 0.002;
  t.buckets = 3;
  t.bytes = 10'000'000;
  CHECK(t.overlap_ratio() == Approx(0.8));
  CHECK(t.exposed_fraction() == Approx(0.2));
  CHECK(t.format() == "comm 10.00 ms (exposed 2.00 ms, overlap 80%), 3 buckets, 10.00 MB");
  t.gather_s = 0.0015;
  CHECK(t.format() == "comm 10.00 ms (exposed 2.00 ms, overlap 80%), 3 buckets, 10.00 MB, gather 1.50 ms");
  t.exposed_s = 0.5;  // waited longer than the engine worked (skew): clamped
  CHECK(t.overlap_ratio() == 0.0);
}
