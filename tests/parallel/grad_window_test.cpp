// The ZeRO-2/3 gradient window's plan (parallel/grad_window.h), replayed
// against backward's ready order: no slot is handed out over a bucket that
// backward is still writing; every earlier bucket a slot overlaps is listed
// for the reducer to wait on; the ring is smaller than the gradients when the
// buckets are, and the full buffer when nothing launches during backward.
#include <catch2/catch.hpp>
#include <algorithm>

#include "parallel/grad_window.h"

using namespace vitscale;

namespace {

ViTConfig vit_s() {  // timm's ViT-S/16 at 224: 22 M parameters
  ViTConfig c;
  c.image_size = 224;
  c.patch_size = 16;
  c.dim = 384;
  c.depth = 12;
  c.heads = 6;
  c.mlp_dim = 1536;
  c.num_classes = 1000;
  return c;
}

bool overlap(std::int64_t a, std::int64_t na, std::int64_t b, std::int64_t nb) { return a < b + nb && b < a + na; }

}  // namespace

TEST_CASE("the gradient window never reuses a slot backward is still writing", "[parallel][zero23]") {
  const ParamTable table(vit_s());
  const std::vector<std::int64_t> ready = table.backward_ready_offsets();
  REQUIRE(ready.front() == table.params()[static_cast<std::size_t>(table.head_w)].offset);
  REQUIRE(ready.back() == 0);
  for (std::size_t bucket_bytes : {std::size_t{1}, std::size_t{1} << 20, std::size_t{8} << 20, std::size_t{1} << 30}) {
    const BucketPlan plan = plan_buckets(table, bucket_bytes);
    const GradWindowPlan w = plan_grad_window(plan, table, true);
    INFO("bucket " << bucket_bytes << " B: " << plan.buckets.size() << " buckets, " << w.describe());
    REQUIRE(w.slot.size() == plan.buckets.size());
    // The bucket count the start-up log states (and tools/scaling/zero_memory.cpp uses).
    std::int64_t largest = 0;
    for (const Bucket& b : plan.buckets) largest = std::max(largest, b.count);
    CHECK(w.largest_bucket == largest);
    CHECK(w.bucket_count() == Approx(static_cast<double>(w.capacity) / static_cast<double>(largest)));
    CHECK(w.describe().find(" buckets of <= " + std::to_string(largest) + " elements") != std::string::npos);
    for (std::size_t i = 0; i < plan.buckets.size(); ++i) {
      CHECK(w.slot[i] >= 0);
      CHECK(w.slot[i] + plan.buckets[i].count <= w.capacity);
      // Every earlier bucket whose slot this one overlaps is waited for.
      for (std::size_t j = 0; j < i; ++j)
        if (overlap(w.slot[i], plan.buckets[i].count, w.slot[j], plan.buckets[j].count))
          CHECK(std::find(w.reuses[i].begin(), w.reuses[i].end(), static_cast<int>(j)) != w.reuses[i].end());
    }
    // Replay: while backward writes [r, above), every bucket reaching into it
    // has a slot, and no two of those not yet launched share ring elements.
    std::int64_t above = plan.total;
    for (std::int64_t r : ready) {
      std::vector<std::size_t> writing;
      for (std::size_t i = 0; i < plan.buckets.size(); ++i)
        if (plan.buckets[i].end() > r && plan.buckets[i].begin < above) writing.push_back(i);
      for (std::size_t a : writing)
        for (std::size_t b : writing)
          if (a < b) CHECK_FALSE(overlap(w.slot[a], plan.buckets[a].count, w.slot[b], plan.buckets[b].count));
      above = r;
    }
    if (plan.buckets.size() > 8) {
      CHECK_FALSE(w.full);
      CHECK(w.capacity < plan.total / 3);  // about two blocks of twelve
    }
  }
  // Nothing launches before finish() with overlap off: the whole buffer.
  const BucketPlan plan = plan_buckets(table, 1 << 20);
  const GradWindowPlan off = plan_grad_window(plan, table, false);
  CHECK(off.full);
  CHECK(off.capacity == plan.total);
  for (std::size_t i = 0; i < plan.buckets.size(); ++i) CHECK(off.slot[i] == plan.buckets[i].begin);
}
