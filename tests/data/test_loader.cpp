// test_loader.cpp — the prefetching loader: same bytes as the synchronous path whatever the
// thread count, bit-identical resume, exact evaluation sharding, clean shutdown.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "data/loader.h"
#include "data/synthetic.h"

using namespace vitscale::data;

namespace {

Dataset small_dataset(std::int64_t n = 203) {
  SyntheticSpec spec;
  spec.train_count = n;
  spec.test_count = n;
  spec.height = 12;
  spec.width = 10;
  spec.num_classes = 5;
  spec.seed = 3;
  return make_synthetic(spec, Split::train);
}

bool same_batch(const Batch& a, const Batch& b) {
  const std::size_t image_bytes = static_cast<std::size_t>(a.capacity) * a.channels * a.height * a.width;
  const std::size_t target_bytes = static_cast<std::size_t>(a.capacity) * a.num_classes * sizeof(float);
  return a.epoch == b.epoch && a.step == b.step && a.size == b.size && a.labels == b.labels &&
         a.indices == b.indices && a.source_labels == b.source_labels && a.mix.kind == b.mix.kind &&
         a.mix.lambda == b.mix.lambda && std::memcmp(a.image_data(), b.image_data(), image_bytes) == 0 &&
         std::memcmp(a.target_data(), b.target_data(), target_bytes) == 0;
}

LoaderConfig augmented_config() {
  LoaderConfig c;
  c.batch_size = 16;
  c.world_size = 2;
  c.rank = 1;
  c.seed = 77;
  c.augment.crop_padding = 2;
  c.augment.horizontal_flip = true;
  c.augment.randaugment_ops = 2;
  c.augment.mixup_alpha = 0.8f;
  c.augment.cutmix_alpha = 1.f;
  c.augment.label_smoothing = 0.1f;
  return c;
}

}  // namespace

TEST_CASE("loader batches equal the synchronous make_batch for any number of workers", "[loader]") {
  const Dataset d = small_dataset();
  LoaderConfig config = augmented_config();
  config.num_epochs = 2;
  Loader reference(d, config);
  const std::int64_t steps = reference.steps_per_epoch();
  REQUIRE(steps == (203 / 2) / 16);  // 6
  Batch expect = reference.allocate_batch();
  for (int workers : {0, 1, 2, 3}) {
    INFO("workers " << workers);
    config.num_workers = workers;
    config.prefetch_batches = 3;
    Loader loader(d, config);
    std::int64_t count = 0;
    while (BatchLease lease = loader.next()) {
      reference.make_batch(count / steps, count % steps, expect);
      REQUIRE(lease->epoch == count / steps);
      REQUIRE(lease->step == count % steps);
      REQUIRE(same_batch(*lease, expect));
      ++count;
    }
    CHECK(count == 2 * steps);
    CHECK_FALSE(loader.next());  // stays at the end
  }
}

TEST_CASE("loader resumes at (epoch, step) bit-identically", "[loader]") {
  const Dataset d = small_dataset();
  LoaderConfig config = augmented_config();
  config.num_workers = 2;
  Loader full(d, config);
  std::vector<Batch> stream;
  for (int i = 0; i < 14; ++i) {
    BatchLease lease = full.next();
    Batch copy = full.allocate_batch();
    full.make_batch(lease->epoch, lease->step, copy);
    REQUIRE(same_batch(copy, *lease));
    stream.push_back(std::move(copy));
  }
  config.start_epoch = 1;
  config.start_step = 3;  // stream batch 6 + 3 = 9
  Loader resumed(d, config);
  for (int i = 9; i < 14; ++i) REQUIRE(same_batch(*resumed.next(), stream[static_cast<std::size_t>(i)]));
  resumed.restart(0, 13);  // a step past the epoch's end rolls over to (2, 1)
  BatchLease lease = resumed.next();
  CHECK(lease->epoch == 2);
  CHECK(lease->step == 1);
  CHECK(same_batch(*lease, stream[13]));
  CHECK_THROWS_AS(resumed.restart(0, 0), std::logic_error);  // a lease is held
  lease.release();
  CHECK_NOTHROW(resumed.restart(0, 0));
  CHECK(same_batch(*resumed.next(), stream[0]));
}

TEST_CASE("training batches: ranks disjoint within an epoch, reshuffled across epochs", "[loader]") {
  const Dataset d = small_dataset();
  for (int w : {1, 2, 3, 4}) {
    std::set<std::int64_t> epoch0;
    std::vector<std::int64_t> rank0_epoch0, rank0_epoch1;
    for (int r = 0; r < w; ++r) {
      LoaderConfig config;
      config.batch_size = 8;
      config.world_size = w;
      config.rank = r;
      config.num_epochs = 2;
      config.num_workers = 1;
      Loader loader(d, config);
      while (BatchLease b = loader.next()) {
        REQUIRE(b->size == 8);
        for (int j = 0; j < 8; ++j) {
          const std::int64_t index = b->indices[static_cast<std::size_t>(j)];
          // Without augmentation a row is the dataset image itself, with a one-hot target.
          REQUIRE(std::memcmp(b->image_data() + j * d.image_bytes(), d.image(index), d.image_bytes()) == 0);
          REQUIRE(b->labels[static_cast<std::size_t>(j)] == d.labels[static_cast<std::size_t>(index)]);
          REQUIRE(b->target_data()[j * 5 + b->labels[static_cast<std::size_t>(j)]] == 1.f);
          if (b->epoch == 0) REQUIRE(epoch0.insert(index).second);
          if (r == 0) (b->epoch == 0 ? rank0_epoch0 : rank0_epoch1).push_back(index);
        }
      }
    }
    CHECK(static_cast<std::int64_t>(epoch0.size()) == w * ((203 / w) / 8) * 8);
    CHECK(rank0_epoch0 != rank0_epoch1);
  }
}

TEST_CASE("evaluation sharding covers the split exactly once and sums combine exactly", "[loader]") {
  const Dataset d = small_dataset(50);
  for (int w : {1, 2, 3, 4, 7}) {
    std::vector<int> hits(50, 0);
    std::int64_t label_sum = 0, steps = -1;
    for (int r = 0; r < w; ++r) {
      LoaderConfig config;
      config.mode = LoaderMode::eval;
      config.batch_size = 4;
      config.world_size = w;
      config.rank = r;
      config.augment.label_smoothing = 0.2f;  // ignored in eval
      Loader loader(d, config);
      if (steps < 0) steps = loader.steps_per_epoch();
      REQUIRE(loader.steps_per_epoch() == steps);  // every rank runs the same number of steps
      std::int64_t seen_steps = 0;
      while (BatchLease b = loader.next()) {
        ++seen_steps;
        for (int j = 0; j < b->capacity; ++j) {
          const auto index = b->indices[static_cast<std::size_t>(j)];
          if (j >= b->size) {
            REQUIRE(index == -1);
            REQUIRE(b->labels[static_cast<std::size_t>(j)] == -1);
            REQUIRE(b->target_data()[j * 5] == 0.f);
            continue;
          }
          ++hits[static_cast<std::size_t>(index)];
          label_sum += b->labels[static_cast<std::size_t>(j)];
          REQUIRE(b->target_data()[j * 5 + b->labels[static_cast<std::size_t>(j)]] == 1.f);
        }
      }
      CHECK(seen_steps == steps);
    }
    for (int h : hits) REQUIRE(h == 1);
    std::int64_t expected = 0;
    for (int l : d.labels) expected += l;
    CHECK(label_sum == expected);
  }
}

TEST_CASE("loader allocates its slots once, from the host allocator", "[loader]") {
  const Dataset d = small_dataset();
  std::atomic<int> calls{0};
  LoaderConfig config = augmented_config();
  config.prefetch_batches = 3;
  config.allocator = [&calls](std::size_t bytes) {
    ++calls;
    return vitscale::allocate_host_aligned(bytes);
  };
  Loader loader(d, config);
  CHECK(calls == 6);  // images + targets per slot
  for (int i = 0; i < 20; ++i) {
    BatchLease b = loader.next();
    CHECK(reinterpret_cast<std::uintptr_t>(b->image_data()) % 64 == 0);
  }
  CHECK(calls == 6);
  config.allocator = [](std::size_t) { return vitscale::Buffer(); };
  CHECK_THROWS_AS(Loader(d, config), std::runtime_error);
}

TEST_CASE("loader shuts down cleanly: blocked workers, held leases, leases outliving it", "[loader]") {
  const Dataset d = small_dataset();
  LoaderConfig config = augmented_config();
  config.num_workers = 3;
  config.prefetch_batches = 2;
  BatchLease survivor;
  {
    Loader loader(d, config);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // workers fill the ring and block
    BatchLease a = loader.next();
    BatchLease b = loader.next();
    CHECK_THROWS_AS(loader.next(), std::logic_error);  // every slot leased: would wait forever
    a.release();
    survivor = std::move(b);
    BatchLease c = loader.next();
    CHECK(c->step == 2);
    loader.stop();
    CHECK_FALSE(loader.next());
    loader.stop();  // idempotent
  }  // destructor joins; `survivor` still points at valid memory
  CHECK(survivor->step == 1);
  survivor.release();
  for (int i = 0; i < 20; ++i) {  // construct and destroy at once, repeatedly
    Loader loader(d, config);
  }
}

TEST_CASE("loader refuses configurations that cannot work", "[loader]") {
  const Dataset d = small_dataset(20);
  LoaderConfig config;
  config.batch_size = 16;
  config.world_size = 2;
  CHECK_THROWS_AS(Loader(d, config), std::invalid_argument);  // 10 per rank < one batch
  config.batch_size = 4;
  config.prefetch_batches = 1;
  CHECK_THROWS_AS(Loader(d, config), std::invalid_argument);
  config.prefetch_batches = 2;
  config.rank = 2;
  CHECK_THROWS_AS(Loader(d, config), std::invalid_argument);
  config.rank = 0;
  Loader ok(d, config);
  Batch b = ok.allocate_batch();
  CHECK_THROWS_AS(ok.make_batch(0, ok.steps_per_epoch(), b), std::out_of_range);
}

// A fence standing in for the device's copy from a slot: it completes when
// the test says so, and records the order of events.
namespace {

struct FakeCopy {
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::atomic<int> waits{0};
  void finish() {
    {
      std::lock_guard lock(m);
      finished = true;
    }
    cv.notify_all();
  }
  vitscale::HostReadFence fence() {
    return vitscale::HostReadFence([this] {
      ++waits;
      std::unique_lock lock(m);
      cv.wait(lock, [this] { return finished; });
    });
  }
};

}  // namespace

TEST_CASE("a slot released with a pending copy is refilled only after the copy completes", "[loader][fence]") {
  const Dataset d = small_dataset();
  for (int workers : {0, 1, 2}) {
    INFO("workers " << workers);
    LoaderConfig config = augmented_config();
    config.num_workers = workers;
    config.prefetch_batches = 2;
    Loader loader(d, config);
    Batch expected = loader.allocate_batch();
    FakeCopy copy;
    BatchLease first = loader.next();  // batch 0, slot 0
    const std::uint8_t* slot0 = first->image_data();
    first.release(copy.fence());        // returns at once: the consumer does not wait for the copy
    BatchLease second = loader.next();  // batch 1, slot 1: needs no fence
    CHECK(second->step == 1);
    second.release();
    std::atomic<bool> got_third{false};
    std::thread consumer([&] {
      BatchLease third = loader.next();  // batch 2 goes into slot 0: waits for the copy
      CHECK(third->image_data() == slot0);
      loader.make_batch(0, 2, expected);
      CHECK(same_batch(*third, expected));
      got_third = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    CHECK_FALSE(got_third.load());  // slot 0 is not refilled under the running copy
    CHECK(copy.waits == 1);         // whoever fills slot 0 waits on the fence, once
    copy.finish();
    consumer.join();
    CHECK(got_third.load());
    CHECK(copy.waits == 1);
  }
}

TEST_CASE("a fence left on a slot is waited before the ring's memory is freed", "[loader][fence]") {
  const Dataset d = small_dataset();
  LoaderConfig config = augmented_config();
  config.num_workers = 0;  // nothing refills the slot: only the teardown waits
  config.prefetch_batches = 2;
  FakeCopy copy;
  std::atomic<bool> destroyed{false};
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(destroyed.load());
    copy.finish();
  });
  {
    Loader loader(d, config);
    BatchLease b = loader.next();
    b.release(copy.fence());
  }  // the slot's fence is waited here, before the batch memory goes
  destroyed = true;
  finisher.join();
  CHECK(copy.waits == 1);
}

TEST_CASE("a fence's wait runs once and a default fence is complete", "[loader][fence]") {
  vitscale::HostReadFence none;
  CHECK_FALSE(none.pending());
  none.wait();
  int calls = 0;
  {
    vitscale::HostReadFence f([&] { ++calls; });
    CHECK(f.pending());
    vitscale::HostReadFence moved = std::move(f);
    CHECK_FALSE(f.pending());
    moved.wait();
    moved.wait();
    CHECK_FALSE(moved.pending());
  }
  CHECK(calls == 1);
  {
    vitscale::HostReadFence g([&] { ++calls; });
  }  // destroyed pending: waited
  CHECK(calls == 2);
}
