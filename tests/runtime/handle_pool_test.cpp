// handle_pool_test.cpp — the event pool's bookkeeping (kernels/cuda/handle_pool.h)
// with a counting fake handle: reuse instead of creation, every handle
// destroyed once, leases that outlive the pool. Host-only (no GPU needed).
#include "kernels/cuda/handle_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

struct Counts {  // atomic: the threaded case creates handles from four threads
  std::atomic<int> created{0}, destroyed{0};
  std::atomic<bool> fail_next{false};
  void reset() {
    created = 0;
    destroyed = 0;
    fail_next = false;
  }
};
struct FakeTraits {
  using Handle = int;
  // The fake's ledger (the traits are static, like CUDA's API); reset by each test.
  static Counts& ledger() {
    static Counts c;
    return c;
  }
  static int create() {
    if (ledger().fail_next) {
      ledger().fail_next = false;
      throw std::runtime_error("create failed");
    }
    return ++ledger().created;  // handles 1, 2, 3, ...
  }
  static void destroy(int) noexcept { ++ledger().destroyed; }
};
using Pool = vitscale::cuda::HandlePool<FakeTraits>;

}  // namespace

TEST_CASE("event pool: a given-back handle is reused, not recreated", "[runtime][pool]") {
  Counts& c = FakeTraits::ledger();
  c.reset();
  {
    Pool pool;
    int first = 0;
    {
      Pool::Lease a = pool.acquire();
      first = a.get();
      CHECK(c.created == 1);
    }
    CHECK(pool.free_count() == 1);
    for (int step = 0; step < 100; ++step) {  // one collective per step: one handle in all
      Pool::Lease b = pool.acquire();
      CHECK(b.get() == first);
    }
    CHECK(c.created == 1);
    std::vector<Pool::Lease> held;
    std::set<int> distinct;
    for (int i = 0; i < 5; ++i) {  // five in flight at once: five distinct handles
      held.push_back(pool.acquire());
      distinct.insert(held.back().get());
    }
    CHECK(distinct.size() == 5);
    CHECK(pool.created() == 5);
    CHECK(pool.free_count() == 0);
    held.clear();
    CHECK(pool.free_count() == 5);
    CHECK(c.destroyed == 0);
  }
  CHECK(c.destroyed.load() == 5);  // each destroyed once, with the pool
}

TEST_CASE("event pool: a lease may outlive the pool and moves give back once", "[runtime][pool]") {
  Counts& c = FakeTraits::ledger();
  c.reset();
  Pool::Lease survivor;
  {
    Pool pool;
    Pool::Lease a = pool.acquire();
    Pool::Lease b = std::move(a);
    CHECK_FALSE(a);
    CHECK(b);
    survivor = std::move(b);
    Pool::Lease other = pool.acquire();
    other = pool.acquire();  // the first of these goes back on assignment
    CHECK(pool.free_count() == 1);
  }
  CHECK(c.destroyed == 0);  // the core lives while a lease holds it
  survivor = Pool::Lease();
  CHECK(c.destroyed.load() == c.created.load());
}

TEST_CASE("event pool: a failed creation leaves the pool unchanged and threads share it", "[runtime][pool]") {
  Counts& c = FakeTraits::ledger();
  c.reset();
  Pool pool;
  c.fail_next = true;
  CHECK_THROWS_AS(pool.acquire(), std::runtime_error);
  CHECK(pool.created() == 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) Pool::Lease l = pool.acquire();
    });
  for (auto& t : threads) t.join();
  CHECK(pool.created() <= 4);  // never more than were in flight at once
  CHECK(pool.free_count() == pool.created());
}
