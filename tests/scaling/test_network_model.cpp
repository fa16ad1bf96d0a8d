// The all-reduce cost formulas against hand computation.
#include <catch2/catch.hpp>
#include <stdexcept>

#include "tools/scaling/network_model.h"

using namespace vitscale::scaling;

TEST_CASE("ring all-reduce costs 2(p-1)/p bytes/bandwidth + 2(p-1) latency", "[network]") {
  // 100 MB over 4 ranks at 10 GB/s with 5 us per step:
  // 2·3/4 · 1e8 / 1e10 = 15 ms, plus 2·3 · 5 us = 30 us.
  CHECK(ring_allreduce_s(1e8, 4, 1e10, 5e-6) == Approx(0.015 + 30e-6).epsilon(1e-12));
  // Two ranks: each sends half and receives half, twice: S / B + 2 α.
  CHECK(ring_allreduce_s(1e6, 2, 1e9, 1e-6) == Approx(1e-3 + 2e-6).epsilon(1e-12));
  CHECK(ring_allreduce_s(1e9, 1, 1e9, 1e-6) == 0.0);
}

TEST_CASE("tree all-reduce costs 2 bytes/bandwidth + 2 log2(p) latency", "[network]") {
  CHECK(tree_allreduce_s(1e8, 8, 1e10, 5e-6) == Approx(0.02 + 6 * 5e-6).epsilon(1e-12));
  CHECK(tree_allreduce_s(1e8, 5, 1e10, 5e-6) == Approx(0.02 + 6 * 5e-6).epsilon(1e-12));  // depth ceil(log2 5) = 3
}

TEST_CASE("a network model adds the launch cost and uses the bottleneck link across nodes", "[network]") {
  NetworkModel n;
  n.intra = {"intra", 100.0, 2.0, ""};
  n.inter = {"inter", 10.0, 10.0, ""};
  n.ranks_per_node = 4;
  n.nics_per_node = 2;
  n.launch_us = 8.0;
  SECTION("inside one node: the intra link") {
    CHECK(n.allreduce_s(4e8, 4) == Approx(ring_allreduce_s(4e8, 4, 100e9, 2e-6) + 8e-6));
  }
  SECTION("across nodes: min(intra, NICs x NIC bandwidth), the slowest hop's latency") {
    CHECK(n.nodes(8) == 2);
    CHECK(n.allreduce_s(4e8, 8) == Approx(ring_allreduce_s(4e8, 8, 20e9, 10e-6) + 8e-6));
  }
  SECTION("hierarchical: ring in the node, then the 1/g shard across nodes on its NIC share") {
    n.algo = AllReduceAlgo::hierarchical;
    const double expect = ring_allreduce_s(4e8, 4, 100e9, 2e-6) + ring_allreduce_s(1e8, 2, 20e9 / 4, 10e-6) + 8e-6;
    CHECK(n.allreduce_s(4e8, 8) == Approx(expect));
  }
  SECTION("best takes the cheapest") {
    n.algo = AllReduceAlgo::best;
    CHECK(n.allreduce_s(4e8, 8) ==
          Approx(std::min({n.ring_s(4e8, 8), n.tree_s(4e8, 8), n.hierarchical_s(4e8, 8)}) + 8e-6));
  }
  SECTION("one rank communicates nothing") { CHECK(n.allreduce_s(4e8, 1) == 0.0); }
}

TEST_CASE("presets carry their sources and round-trip through JSON", "[network]") {
  for (const auto& name : network_preset_names()) {
    const NetworkModel n = network_preset(name);
    CHECK_FALSE(n.intra.source.empty());
    CHECK_FALSE(n.inter.source.empty());
    const NetworkModel back = network_from_json(to_json(n));
    CHECK(back.intra.bandwidth_GBps == n.intra.bandwidth_GBps);
    CHECK(back.inter.latency_us == n.inter.latency_us);
    CHECK(back.ranks_per_node == n.ranks_per_node);
  }
  CHECK_THROWS_WITH(network_preset("token-ring"), Catch::Contains("dgx-h100"));
  CHECK_THROWS_AS(load_network("/nonexistent/net.json"), std::runtime_error);
}

TEST_CASE("contended curves give the rates of a collective overlapping compute", "[network]") {
  NetworkModel n;
  n.intra = {"cpu", 1.0, 0.0, ""};  // idle: S / 1 GB/s on 2 ranks
  n.inter = n.intra;
  n.comm_compute_share = 1.0;
  n.contended.push_back({2, "thread", 1000.0, {{1e6, 0.004, 0.001}, {4e6, 0.010, 0.004}}});
  n.contended.push_back({2, "polling", 1000.0, {{1e6, 0.002, 0.0005}}});
  SECTION("at a measured size") {
    const auto r = n.overlapped(1e6, 2);  // idle 1 ms, contended 4 ms, 1 ms lost
    CHECK(r.comm_rate == Approx(0.25));
    CHECK(r.compute_rate == Approx(0.75));
  }
  SECTION("between sizes: linear in bytes") {
    const auto r = n.overlapped(2.5e6, 2);  // contended 7 ms, 2.5 ms lost; idle 2.5 ms
    CHECK(r.comm_rate == Approx(2.5 / 7.0));
    CHECK(r.compute_rate == Approx(1.0 - 2.5 / 7.0));
  }
  SECTION("the progress mode picks the curve") {
    n.mpi_progress = "polling";
    const auto r = n.overlapped(1e6, 2);
    CHECK(r.comm_rate == Approx(0.5));
    CHECK(r.compute_rate == Approx(0.75));
  }
  SECTION("no curve for the world size: processor sharing") {
    const auto r = n.overlapped(1e6, 4);
    CHECK(r.comm_rate == Approx(0.5));
    CHECK(r.compute_rate == Approx(0.5));
  }
  SECTION("a contended point faster than idle (noise) means no slowdown, never a speed-up") {
    n.contended[0].points[0].seconds = 0.0005;
    n.contended[0].points[0].compute_lost_s = 0.0;
    const auto r = n.overlapped(1e6, 2);
    CHECK(r.comm_rate == 1.0);
    CHECK(r.compute_rate == 1.0);
  }
  SECTION("curves at several gaps: linear in the gap between them, clamped outside") {
    // The same size measured with 4 ms of compute between launches: 6 ms per
    // collective, 3 ms lost (at 1 ms: 4 ms, 1 ms lost).
    n.contended.push_back({2, "thread", 4000.0, {{1e6, 0.006, 0.003}}});
    const auto at = [&](double gap_s) { return n.overlapped(1e6, 2, Collective::all_reduce, gap_s); };
    CHECK(at(-1).compute_rate == Approx(0.75));  // no gap given: the smallest gap's curve
    CHECK(at(0.0005).compute_rate == Approx(0.75));
    CHECK(at(0.001).compute_rate == Approx(0.75));
    const auto mid = at(0.0025);  // halfway: 5 ms per collective, 2 ms lost
    CHECK(mid.comm_rate == Approx(1.0 / 5.0));
    CHECK(mid.compute_rate == Approx(1.0 - 2.0 / 5.0));
    CHECK(at(0.004).compute_rate == Approx(0.5));
    CHECK(at(0.050).comm_rate == Approx(1.0 / 6.0));  // beyond the largest gap: its curve
    CHECK(at(0.050).compute_rate == Approx(0.5));
    n.mpi_progress = "polling";  // the other mode has one gap: the gap changes nothing
    CHECK(at(0.004).compute_rate == Approx(0.75));
  }
  SECTION("they round-trip through JSON") {
    n.mpi_progress = "polling";
    const NetworkModel back = network_from_json(to_json(n));
    REQUIRE(back.contended.size() == 2);
    CHECK(back.contended[0].progress == "thread");
    CHECK(back.contended[0].gap_us == 1000.0);
    CHECK(back.contended[0].points[1].compute_lost_s == 0.004);
    CHECK(back.mpi_progress == "polling");
    CHECK(back.overlapped(2.5e6, 2).comm_rate == n.overlapped(2.5e6, 2).comm_rate);
  }
}

TEST_CASE("a reduce-scatter or all-gather costs its own measured curve, else half an all-reduce", "[network]") {
  NetworkModel n;
  n.intra = {"cpu", 1.0, 0.0, ""};
  n.inter = n.intra;
  n.comm_compute_share = 1.0;
  n.measured.push_back({2, {{1e6, 0.002}, {4e6, 0.006}}});  // all-reduce (the default collective)
  SECTION("no curve of its own: half the all-reduce's") {
    CHECK(n.collective_s(1e6, 2, Collective::reduce_scatter) == Approx(0.001));
    CHECK(n.collective_s(4e6, 2, Collective::all_gather) == Approx(0.003));
    CHECK(n.collective_s(1e6, 2, Collective::all_reduce) == Approx(0.002));
  }
  SECTION("its own curve, which may cost more than half (Open MPI's reduce-scatter does)") {
    n.measured.push_back({2, {{1e6, 0.0018}, {4e6, 0.0058}}, Collective::reduce_scatter});
    CHECK(n.collective_s(1e6, 2, Collective::reduce_scatter) == Approx(0.0018));
    CHECK(n.collective_s(2.5e6, 2, Collective::reduce_scatter) == Approx(0.0038));
    CHECK(n.collective_s(1e6, 2, Collective::all_gather) == Approx(0.001));  // still the fallback
    CHECK(n.measured_s(1e6, 2) == Approx(0.002));                            // the all-reduce is untouched
    CHECK(n.collective_s(1e6, 1, Collective::reduce_scatter) == 0.0);
  }
  SECTION("contended: its own curve, else the all-reduce's slowdown and lost share") {
    n.contended.push_back({2, "thread", 1000.0, {{1e6, 0.008, 0.002}}});  // all-reduce: 4x slower, 25% lost
    const auto fallback = n.overlapped(1e6, 2, Collective::all_gather);
    CHECK(fallback.comm_rate == Approx(0.25));
    CHECK(fallback.compute_rate == Approx(0.75));
    n.measured.push_back({2, {{1e6, 0.0015}}, Collective::all_gather});
    n.contended.push_back({2, "thread", 1000.0, {{1e6, 0.003, 0.0015}}, Collective::all_gather});
    const auto own = n.overlapped(1e6, 2, Collective::all_gather);  // idle 1.5 ms, contended 3 ms, half lost
    CHECK(own.comm_rate == Approx(0.5));
    CHECK(own.compute_rate == Approx(0.5));
    CHECK(n.overlapped(1e6, 2).comm_rate == Approx(0.25));  // the all-reduce keeps its own
  }
  SECTION("the collective round-trips through JSON; a curve without one is an all-reduce") {
    n.measured.push_back({2, {{1e6, 0.0018}}, Collective::reduce_scatter});
    n.contended.push_back({2, "thread", 1000.0, {{1e6, 0.003, 0.001}}, Collective::all_gather});
    nlohmann::json j = to_json(n);
    CHECK(j["measured"][1]["collective"] == "reduce_scatter");
    j["measured"][0].erase("collective");
    const NetworkModel back = network_from_json(j);
    REQUIRE(back.measured.size() == 2);
    CHECK(back.measured[0].collective == Collective::all_reduce);
    CHECK(back.measured[1].collective == Collective::reduce_scatter);
    REQUIRE(back.contended.size() == 1);
    CHECK(back.contended[0].collective == Collective::all_gather);
    j["measured"][1]["collective"] = "allreduce_v";
    CHECK_THROWS_WITH(network_from_json(j), Catch::Contains("reduce_scatter"));
  }
}
