// accuracy_milestones_test.cpp — the last and best test accuracy and the time
// to each round accuracy: first crossing only, not-reached reported as such,
// and the state survives a checkpoint round trip.
#include "train/accuracy_milestones.h"

#include <catch2/catch.hpp>

using vitscale::train::AccuracyMilestones;

TEST_CASE("a milestone's time is the first evaluation at or above it, later ones do not move it", "[milestones]") {
  AccuracyMilestones m;
  m.record(0.80, 10);
  CHECK_FALSE(m.reached_at(0));
  m.record(0.85, 20);  // exactly the threshold counts
  m.record(0.84, 30);  // a dip
  m.record(0.89, 40);
  m.record(0.91, 50);
  m.record(0.95, 60);
  REQUIRE(m.reached_at(0));
  CHECK(*m.reached_at(0) == 20);
  CHECK(*m.reached_at(1) == 40);
  CHECK(*m.reached_at(2) == 50);
  CHECK(m.evaluations() == 6);
  CHECK(m.last() == 0.95);
  CHECK(m.best() == 0.95);
}

TEST_CASE("last and best differ after a dip, and unreached milestones say so", "[milestones]") {
  AccuracyMilestones m;
  m.record(0.87, 12.25);
  m.record(0.86, 24.5);
  CHECK(m.last() == 0.86);
  CHECK(m.best() == 0.87);
  CHECK(m.describe() == "time to 85%: 12.2s, 88%: not reached, 90%: not reached");
  const nlohmann::ordered_json j = m.time_to_json();
  CHECK(j.dump() == R"({"0.85":12.25,"0.88":null,"0.90":null})");
}

TEST_CASE("a milestone jumped over in one evaluation gets that evaluation's time", "[milestones]") {
  AccuracyMilestones m;
  m.record(0.5, 1);
  m.record(0.93, 7);
  CHECK(*m.reached_at(0) == 7);
  CHECK(*m.reached_at(1) == 7);
  CHECK(*m.reached_at(2) == 7);
}

TEST_CASE("before any evaluation nothing is reached and the best is 0", "[milestones]") {
  const AccuracyMilestones m;
  CHECK(m.evaluations() == 0);
  CHECK(m.best() == 0);
  CHECK(m.describe() == "time to 85%: not reached, 88%: not reached, 90%: not reached");
}

TEST_CASE("the milestone state round-trips through its checkpoint JSON", "[milestones]") {
  AccuracyMilestones m({0.5, 0.75});
  m.record(0.6, 3.5);
  m.record(0.55, 7);
  const AccuracyMilestones r = AccuracyMilestones::from_state_json(nlohmann::json::parse(m.state_json().dump()));
  CHECK(r.thresholds() == m.thresholds());
  CHECK(r.evaluations() == 2);
  CHECK(r.last() == 0.55);
  CHECK(r.best() == 0.6);
  CHECK(*r.reached_at(0) == 3.5);
  CHECK_FALSE(r.reached_at(1));
  CHECK_THROWS_WITH(AccuracyMilestones::from_state_json(nlohmann::json::object()),
                    Catch::Contains("accuracy milestones are malformed"));
  CHECK_THROWS(AccuracyMilestones({1.5}));
}
