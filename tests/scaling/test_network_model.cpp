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
