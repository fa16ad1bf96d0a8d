// deferred_times_test.cpp — times of collectives whose events complete after
// they were asked for: reported by a later report of the same kind, each once.
#include "parallel/deferred_times.h"

#include <catch2/catch.hpp>
#include <memory>
#include <optional>

using vitscale::DeferredTimes;

namespace {

// A measurement that becomes readable when `done` is set.
struct Pending {
  bool done = false;
  double seconds = 0;
  DeferredTimes::Reader reader() {
    return [this]() -> std::optional<double> { return done ? std::optional<double>(seconds) : std::nullopt; };
  }
};

}  // namespace

TEST_CASE("deferred times: readable now is reported now", "[parallel][timing]") {
  DeferredTimes t;
  Pending a{true, 0.25};
  CHECK(t.report(0, a.reader()) == 0.25);
  CHECK(t.pending(0) == 0);
  CHECK(t.collect(0) == 0.0);
}

TEST_CASE("deferred times: a pending one is reported once, by a later report of its kind", "[parallel][timing]") {
  DeferredTimes t;
  Pending step1{false, 0.5}, step2{false, 0.25}, other{false, 4.0};
  CHECK(t.report(1, step1.reader()) == 0.0);  // the host is ahead: nothing readable yet
  CHECK(t.report(2, other.reader()) == 0.0);
  CHECK(t.pending(1) == 1);
  step1.done = true;
  other.done = true;
  step2.done = true;
  CHECK(t.report(1, step2.reader()) == 0.75);  // step 1's, late, and step 2's own
  CHECK(t.pending(1) == 0);
  CHECK(t.report(1, Pending{true, 0.0}.reader()) == 0.0);  // nothing counted twice
  CHECK(t.pending(2) == 1);                                // kinds do not mix
  CHECK(t.collect(2) == 4.0);
  CHECK(t.collect(2) == 0.0);
}

TEST_CASE("deferred times: out-of-order completion keeps the rest pending", "[parallel][timing]") {
  DeferredTimes t;
  Pending a{false, 1}, b{false, 2}, c{false, 4};
  t.report(0, a.reader());
  t.report(0, b.reader());
  t.report(0, c.reader());
  b.done = true;
  CHECK(t.collect(0) == 2.0);
  CHECK(t.pending(0) == 2);
  a.done = c.done = true;
  CHECK(t.collect(0) == 5.0);
  CHECK(t.pending(0) == 0);
}
