// The step replay against hand-computable timelines.
#include <catch2/catch.hpp>

#include "runtime/param_table.h"
#include "tests/scaling/sim_fixtures.h"
#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/scaling_study.h"
#include "tools/scaling/timeline.h"

using namespace vitscale;
using namespace vitscale::scaling;

using scaling::testing::four_params;
using scaling::testing::simple_net;

TEST_CASE("one bucket, no overlap: step = compute + all-reduce + optimizer", "[timeline]") {
  const StepProfile p = four_params(0.1, 0.05, 0.01);
  StepOptions o;
  o.world = 2;
  o.overlap = false;
  o.bucket_bytes = 1u << 30;  // everything in one bucket
  const StepResult r = simulate_step(p, simple_net(), o);
  const double comm = ring_allreduce_s(16e6, 2, 1e9, 0.0);  // 16 MB: 16 ms
  REQUIRE(r.buckets.size() == 1);
  CHECK(r.backward_end_s == Approx(0.3));
  CHECK(r.comm_s == Approx(comm));
  CHECK(r.exposed_s == Approx(comm));
  CHECK(r.step_s == Approx(0.1 + 0.2 + comm + 0.01));
  CHECK(r.overlap_ratio() == Approx(0.0));
}

TEST_CASE("no overlap with several buckets: they still all wait for the backward", "[timeline]") {
  const StepProfile p = four_params(0.0, 0.05, 0.0);
  StepOptions o;
  o.world = 2;
  o.overlap = false;
  o.bucket_bytes = 4000000;  // one parameter per bucket
  const StepResult r = simulate_step(p, simple_net(), o);
  REQUIRE(r.buckets.size() == 4);
  CHECK(r.buckets.front().start_s == Approx(0.2));
  CHECK(r.step_s == Approx(0.2 + 4 * 0.004));
}

TEST_CASE("perfect overlap: step = max(compute, communication)", "[timeline]") {
  // Every gradient is final at once (a zero-time first segment finishes all),
  // then backward computes for B more seconds while the one bucket reduces.
  StepProfile p = four_params(0.0, 0.0, 0.0);
  p.backward = {{"all", 0.0, 0}, {"rest", 0.0, 0}};
  StepOptions o;
  o.world = 2;
  o.overlap = true;
  o.bucket_bytes = 1u << 30;
  const double comm = ring_allreduce_s(16e6, 2, 1e9, 0.0);
  SECTION("communication shorter than compute: fully hidden") {
    p.backward[1].seconds = 0.05;
    const StepResult r = simulate_step(p, simple_net(), o);
    CHECK(r.step_s == Approx(std::max(0.05, comm)));
    CHECK(r.exposed_s == Approx(0.0).margin(1e-12));
    CHECK(r.overlap_ratio() == Approx(1.0));
  }
  SECTION("communication longer than compute: compute hidden behind it") {
    p.backward[1].seconds = 0.004;
    const StepResult r = simulate_step(p, simple_net(), o);
    CHECK(r.step_s == Approx(std::max(0.004, comm)));
    CHECK(r.exposed_s == Approx(comm - 0.004));
  }
}

TEST_CASE("buckets launch in order when ready and share one channel", "[timeline]") {
  // Segments of 10 ms, buckets of 4 MB costing 4 ms each at 1 GB/s on 2 ranks... ring on 2 ranks moves S, so 4 ms.
  const StepProfile p = four_params(0.0, 0.010, 0.0);
  StepOptions o;
  o.world = 2;
  o.bucket_bytes = 4000000;
  const StepResult r = simulate_step(p, simple_net(), o);
  REQUIRE(r.buckets.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(r.buckets[i].begin == static_cast<std::int64_t>(3 - i) * 1000000);
    CHECK(r.buckets[i].ready_s == Approx(0.010 * (i + 1)));
    CHECK(r.buckets[i].start_s == Approx(0.010 * (i + 1)));
    CHECK(r.buckets[i].end_s == Approx(0.010 * (i + 1) + 0.004));
  }
  CHECK(r.exposed_s == Approx(0.004));  // only the last bucket sticks out
  CHECK(r.overlap_ratio() == Approx(0.75));

  SECTION("a slow channel queues buckets behind each other") {
    NetworkModel slow = simple_net();
    slow.intra.bandwidth_GBps = 0.25;  // 16 ms a bucket > 10 ms a segment
    const StepResult q = simulate_step(p, slow, o);
    CHECK(q.buckets[1].start_s == Approx(q.buckets[0].end_s));
    CHECK(q.comm_end_s == Approx(0.010 + 4 * 0.016));
    CHECK(q.step_s == Approx(0.074));
  }
}

TEST_CASE("gradient accumulation communicates only after the last micro-step", "[timeline]") {
  const StepProfile p = four_params(0.02, 0.01, 0.0);
  StepOptions o;
  o.world = 2;
  o.accumulation = 3;
  o.overlap = false;
  o.bucket_bytes = 1u << 30;
  const StepResult r = simulate_step(p, simple_net(), o);
  CHECK(r.buckets.size() == 1);
  CHECK(r.step_s == Approx(3 * (0.02 + 0.04) + 0.016));
}

TEST_CASE("CPU ranks share cores between reduction and compute", "[timeline]") {
  StepProfile p = four_params(0.0, 0.0, 0.0);
  p.backward = {{"all", 0.0, 0}, {"rest", 0.05, 0}};
  NetworkModel cpu = simple_net();
  cpu.comm_compute_share = 1.0;  // both at half speed while both run
  StepOptions o;
  o.world = 2;
  o.bucket_bytes = 1u << 30;
  const StepResult r = simulate_step(p, cpu, o);
  // 16 ms of reduction at half speed takes 32 ms and costs compute 16 ms:
  // compute ends at 50 + 16 = 66 ms, the reduction at 32 ms.
  CHECK(r.buckets[0].end_s == Approx(0.032));
  CHECK(r.backward_end_s == Approx(0.066));
  CHECK(r.step_s == Approx(0.066));
}

TEST_CASE("a measured contended curve replaces processor sharing", "[timeline]") {
  // One 16 MB bucket, ready at once, 16 ms alone. Measured while computing:
  // 40 ms per collective, 10 ms of compute lost, so the collective runs at
  // 16/40 = 0.4 of its idle speed and compute at 1 - 10/40 = 0.75.
  StepProfile p = four_params(0.0, 0.0, 0.0);
  NetworkModel cpu = simple_net();
  cpu.comm_compute_share = 1.0;  // ignored where the curve applies
  cpu.contended.push_back({2, "thread", 1000.0, {{16e6, 0.040, 0.010}}});
  StepOptions o;
  o.world = 2;
  o.bucket_bytes = 1u << 30;
  SECTION("compute outlasts the collective: it loses exactly the measured 10 ms") {
    p.backward = {{"all", 0.0, 0}, {"rest", 0.05, 0}};
    const StepResult r = simulate_step(p, cpu, o);
    CHECK(r.buckets[0].end_s == Approx(0.040));
    CHECK(r.backward_end_s == Approx(0.060));  // 30 ms of compute in the first 40, 20 after
  }
  SECTION("compute ends first: the rest of the collective runs at idle speed") {
    p.backward = {{"all", 0.0, 0}, {"rest", 0.02, 0}};
    const StepResult r = simulate_step(p, cpu, o);
    const double t = 0.02 / 0.75;  // compute ends; the collective has done 0.4 t of its 16 ms
    CHECK(r.backward_end_s == Approx(t));
    CHECK(r.buckets[0].end_s == Approx(t + (0.016 - 0.4 * t)));
  }
  SECTION("another progress mode's curve does not apply") {
    p.backward = {{"all", 0.0, 0}, {"rest", 0.05, 0}};
    cpu.mpi_progress = "polling";
    const StepResult r = simulate_step(p, cpu, o);
    CHECK(r.backward_end_s == Approx(0.066));  // processor sharing, as above
  }
}

TEST_CASE("each bucket takes the contended rates of the compute before it", "[timeline]") {
  // Four 4 MB buckets, one ready after each backward segment; 4 ms alone each.
  // Measured with 1 ms of compute between launches: 8 ms per collective, 2 ms
  // of compute lost; with 10 ms: 8 ms, 6 ms lost. So the collective runs at 0.5
  // of its idle speed, and compute at 0.75 (1 ms) or 0.25 (10 ms).
  NetworkModel cpu = simple_net();
  cpu.measured.push_back({2, {{4e6, 0.004}}});
  cpu.contended.push_back({2, "thread", 1000.0, {{4e6, 0.008, 0.002}}});
  cpu.contended.push_back({2, "thread", 10000.0, {{4e6, 0.008, 0.006}}});
  StepOptions o;
  o.world = 2;
  o.bucket_bytes = 4000000;
  SECTION("10 ms between launches: the 10 ms curve") {
    const StepResult r = simulate_step(four_params(0.0, 0.010, 0.0), cpu, o);
    REQUIRE(r.buckets.size() == 4);
    // Bucket 0 is ready at 10 ms and takes 8 ms, while compute does 2 ms of
    // the next 10 ms segment; the other 8 ms run alone, to 26 ms; and so on.
    CHECK(r.buckets[0].end_s == Approx(0.018));
    CHECK(r.buckets[1].ready_s == Approx(0.026));
    CHECK(r.buckets[1].end_s == Approx(0.034));
    CHECK(r.backward_end_s == Approx(0.058));
    CHECK(r.step_s == Approx(0.062));  // the last bucket after backward: alone, 4 ms
  }
  SECTION("5.5 ms between launches: halfway, 4 ms lost of 8 (compute at 0.5)") {
    const StepResult r = simulate_step(four_params(0.0, 0.0055, 0.0), cpu, o);
    CHECK(r.buckets[0].end_s == Approx(0.0135));
    CHECK(r.buckets[1].ready_s == Approx(0.015));  // 4 of its 5.5 ms during the 8 ms, 1.5 ms after
    CHECK(r.backward_end_s == Approx(0.034));
    CHECK(r.step_s == Approx(0.038));
  }
  SECTION("the compute before the step's backward counts for its first bucket") {
    // 10 ms of forward, then 1 ms segments: bucket 0's gap is 11 ms (the 10 ms
    // curve), the others' 1 ms (the 1 ms curve).
    const StepResult r = simulate_step(four_params(0.010, 0.001, 0.0), cpu, o);
    // Bucket 0: 11 -> 19 ms; compute at 0.25 does 2 ms in those 8, two of the
    // 1 ms segments, so bucket 1 waits for it, ready since 15 ms.
    CHECK(r.buckets[0].ready_s == Approx(0.011));
    CHECK(r.buckets[0].end_s == Approx(0.019));
    CHECK(r.buckets[1].ready_s == Approx(0.015));
    CHECK(r.buckets[1].start_s == Approx(0.019));
  }
}

TEST_CASE("the bucket plan matches the reducer's rule on a real ViT", "[timeline]") {
  ViTConfig c;  // the default small model
  std::int64_t total = 0;
  const auto params = param_extents(c, &total);
  const ParamTable table(c);
  for (std::size_t cap : {std::size_t{1} << 16, std::size_t{1} << 20, std::size_t{25} << 20}) {
    const auto b = plan_buckets(params, total, cap);
    // Tiles [0, total) from the top down.
    REQUIRE_FALSE(b.empty());
    CHECK(b.front().begin + b.front().count == total);
    CHECK(b.back().begin == 0);
    for (std::size_t i = 1; i < b.size(); ++i) CHECK(b[i].begin + b[i].count == b[i - 1].begin);
    // Every bucket begins at a parameter's offset, and is within the cap unless it is one parameter.
    for (const auto& x : b) {
      std::int64_t bytes = 0;
      int n = 0;
      for (const auto& p : table.params())
        if (p.offset >= x.begin && p.offset < x.begin + x.count) bytes += p.numel * 4, ++n;
      CHECK((bytes <= static_cast<std::int64_t>(cap) || n == 1));
    }
  }
  // A 1 GiB cap: one bucket.
  CHECK(plan_buckets(params, total, std::size_t{1} << 30).size() == 1);
}

TEST_CASE("backward segments follow the model's grads_ready_from calls", "[timeline]") {
  ViTConfig c;
  const auto s = backward_segments(c);
  REQUIRE(s.size() == static_cast<std::size_t>(c.depth) + 3);
  CHECK(s.front().label == "head");
  CHECK(s[2].label == "blocks." + std::to_string(c.depth - 1));
  CHECK(s.back().label == "embed");
  CHECK(s.back().ready_from == 0);
  for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i].ready_from < s[i - 1].ready_from);
}

TEST_CASE("the straggler term is the expected maximum of p normals", "[timeline]") {
  CHECK(expected_max_std_normal(1) == 0.0);
  CHECK(expected_max_std_normal(2) == Approx(1.0 / std::sqrt(3.14159265358979)).epsilon(1e-6));  // 1/sqrt(pi)
  CHECK(expected_max_std_normal(8) == Approx(1.4236).epsilon(1e-3));                             // tabulated
}

TEST_CASE("bad input is refused with a message", "[timeline]") {
  const StepProfile p = four_params(0.0, 0.01, 0.0);
  StepOptions o;
  o.world = 0;
  CHECK_THROWS_WITH(simulate_step(p, simple_net(), o), Catch::Contains("world size"));
  StepProfile bad = p;
  bad.backward.back().ready_from = 5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("ready_from 0"));
  CHECK_THROWS(plan_buckets(p.params, p.total_elements, 0));
}
