// The communication watchdog: a collective that never completes aborts with a
// message naming the rank, the op and its size; completed ones never do.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "parallel/comm_watchdog.h"

using namespace vitscale;

TEST_CASE("the watchdog's message names the rank, the op, the bytes and the timeout", "[parallel][watchdog]") {
  CHECK(watchdog_message(2, "all_reduce", 4096, 1.5) ==
        "rank 2: all_reduce (4096 bytes) did not complete within 1.5 s; aborting");
}

TEST_CASE("a collective that never completes triggers the abort", "[parallel][watchdog]") {
  std::mutex m;
  std::string seen;
  std::atomic<int> aborts{0};
  {
    CommWatchdog dog(1, 0.1, [&](const std::string& msg) {
      std::lock_guard lock(m);
      seen = msg;
      ++aborts;
    });
    dog.begin("reduce_scatter", 800);
    for (int i = 0; i < 100 && aborts == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(aborts == 1);
  CHECK(seen == "rank 1: reduce_scatter (800 bytes) did not complete within 0.1 s; aborting");
}

TEST_CASE("collectives that complete in time never trigger it", "[parallel][watchdog]") {
  std::atomic<int> aborts{0};
  CommWatchdog dog(0, 0.2, [&](const std::string&) { ++aborts; });
  for (int i = 0; i < 10; ++i) {
    const auto t = dog.begin("all_reduce", 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    dog.end(t);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(aborts == 0);
  CHECK(dog.outstanding() == 0);
}

TEST_CASE("a zero timeout disables the watchdog", "[parallel][watchdog]") {
  std::atomic<int> aborts{0};
  CommWatchdog dog(0, 0, [&](const std::string&) { ++aborts; });
  dog.begin("all_reduce", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(aborts == 0);
  CHECK(dog.outstanding() == 0);
}

TEST_CASE("a collective with a completion probe ends when the probe says so, without end()", "[parallel][watchdog]") {
  std::atomic<int> aborts{0};
  std::atomic<bool> complete{false};
  CommWatchdog dog(0, 0.3, [&](const std::string&) { ++aborts; });
  dog.begin("all_reduce", 4096, [&] { return complete.load(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(dog.outstanding() == 1);  // still in flight: the probe says not yet
  complete = true;                // the device finished it; nobody on the host waited
  for (int i = 0; i < 50 && dog.outstanding() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(dog.outstanding() == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(aborts == 0);
}

TEST_CASE("a probe that never says complete still triggers the abort", "[parallel][watchdog]") {
  std::atomic<int> aborts{0};
  std::mutex m;
  std::string seen;
  {
    CommWatchdog dog(3, 0.1, [&](const std::string& msg) {
      std::lock_guard lock(m);
      seen = msg;
      ++aborts;
    });
    dog.begin("all_gather", 64, [] { return false; });
    for (int i = 0; i < 100 && aborts == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(aborts == 1);
  CHECK(seen == "rank 3: all_gather (64 bytes) did not complete within 0.1 s; aborting");
}
