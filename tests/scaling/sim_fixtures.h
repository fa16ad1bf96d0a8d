// Hand-computable inputs shared by the simulator's tests (test_timeline, test_zero).
#pragma once

#include <string>

#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"

namespace vitscale::scaling::testing {

// Any collective at 1 GB/s, no latency: a ring all-reduce of S bytes on p ranks
// costs 2(p−1)/p · S / 1e9 s, a reduce-scatter or all-gather half that.
inline NetworkModel simple_net(double comm_compute_share = 0) {
  NetworkModel n;
  n.name = "test";
  n.intra = {"test", 1.0, 0.0, ""};
  n.inter = n.intra;
  n.ranks_per_node = 8;
  n.comm_compute_share = comm_compute_share;
  return n;
}

// Four parameters of 1e6 floats (4 MB each); the backward finishes one per
// segment, labelled `label` + index (p3 .. p0, or blocks.3 .. blocks.0).
inline StepProfile four_params(double fwd, double seg, double opt, const std::string& label = "p") {
  StepProfile p;
  p.source = "test";
  p.micro_batch = 1;
  p.forward_s = fwd;
  p.optimizer_s = opt;
  for (int i = 0; i < 4; ++i) p.params.push_back({i * 1000000LL, 1000000LL});
  p.total_elements = 4000000;
  for (int i = 3; i >= 0; --i) p.backward.push_back({label + std::to_string(i), seg, i * 1000000LL});
  return p;
}

}  // namespace vitscale::scaling::testing
