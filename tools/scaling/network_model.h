// network_model.h — what one gradient all-reduce costs on a given machine.
//
// The alpha-beta model: a collective over p ranks costs a bandwidth term
// (bytes each rank must move / the bus bandwidth it gets) plus a latency term
// (number of dependent steps × per-step latency), plus a fixed launch cost.
//   ring:          2(p−1)/p · S / B  +  2(p−1) · α         (reduce-scatter + all-gather)
//   tree:          2 · S / B          +  2⌈log2 p⌉ · α      (pipelined reduce up, broadcast down)
//   hierarchical:  ring inside the node on S, ring across nodes on S/g per rank
//                  over that rank's share of the node's NICs, ring all-gather inside
// A flat ring that spans nodes runs at the slowest of its links: inside a node
// the GPU–GPU bus bandwidth, between nodes the node's NICs together (NCCL
// puts one channel on each NIC). Every number of a preset names its source in
// `source`; those that are assumptions say so.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vitscale::scaling {

struct Link {
  std::string name;
  double bandwidth_GBps = 0;  // bus bandwidth one rank gets through this link (1e9 B/s)
  double latency_us = 0;      // per dependent step of the algorithm
  std::string source;         // where the numbers come from (datasheet, NCCL's model, a measurement)
};

enum class AllReduceAlgo { ring, tree, hierarchical, best };

// The collectives a data-parallel step issues: the all-reduce of stage 0, the
// reduce-scatter and all-gather of ZeRO 1-3. MPI runs each with its own
// algorithm, so one measured all-reduce does not say what the other two cost
// (Open MPI's 2-rank reduce-scatter of 4 MiB takes about as long as the
// all-reduce, not half).
enum class Collective { all_reduce, reduce_scatter, all_gather };
Collective parse_collective(const std::string& name);                      // allreduce | reduce_scatter | allgather
std::vector<Collective> parse_collectives(const std::string& comma_list);  // "allreduce,allgather"
const char* collective_name(Collective c);
AllReduceAlgo parse_algo(const std::string& name);  // ring | tree | hierarchical | best
const char* algo_name(AllReduceAlgo a);

// The hand-computable formulas (seconds). p <= 1 costs nothing.
double ring_allreduce_s(double bytes, int p, double bandwidth_Bps, double latency_s);
double tree_allreduce_s(double bytes, int p, double bandwidth_Bps, double latency_s);

struct NetworkModel {
  std::string name;
  Link intra;              // between ranks of one node
  Link inter;              // one NIC, between nodes
  int ranks_per_node = 8;  // ranks fill a node before the next node is used
  int nics_per_node = 1;
  double launch_us = 0;  // fixed cost of every collective (NCCL: baseLat)
  // Share of the collective's work that runs on the compute resource itself
  // (0: GPU, copy engines and a few SMs; 1: CPU ranks, the reduction runs on
  // the same cores as the model). While both run they share it (timeline.h).
  double comm_compute_share = 0;
  AllReduceAlgo algo = AllReduceAlgo::ring;
  // Measured all-reduce times (vit_allreduce_bench). Where a curve exists for
  // the world size asked, it replaces the formulas: piecewise linear in bytes,
  // extended beyond the last point with the last segment's slope. CPU caches
  // make the cost per byte depend on the size, which two parameters cannot say.
  struct Point {
    double bytes = 0, seconds = 0;
  };
  struct Curve {
    int world = 0;
    std::vector<Point> points;                       // ascending bytes (the full, unsharded buffer)
    Collective collective = Collective::all_reduce;  // JSON "collective"; absent: allreduce
  };
  std::vector<Curve> measured;
  // Measured while the same core computes (vit_contended_bench): per message
  // size, the collective's wall time and the compute the core lost meanwhile.
  // Where a curve exists for the world size, a bucket that overlaps compute
  // runs at these rates instead of comm_compute_share's processor sharing.
  struct ContendedPoint {
    double bytes = 0, seconds = 0, compute_lost_s = 0;
  };
  struct ContendedCurve {
    int world = 0;
    std::string progress;                // the MPI progress mode it was measured with
    double gap_us = 0;                   // compute between two collectives in the bench
    std::vector<ContendedPoint> points;  // ascending bytes
    Collective collective = Collective::all_reduce;
  };
  std::vector<ContendedCurve> contended;
  std::string mpi_progress = "thread";  // whose contended curve applies (vit_train's default)
  // How fast a collective of `bytes` and compute progress while both run on
  // one core, each as a fraction of its speed alone.
  struct Overlapped {
    double comm_rate = 1, compute_rate = 1;
  };
  // From the contended curves of this collective, world size and mpi_progress;
  // without one, the all-reduce's contended curves at the same size (their
  // slowdown and lost share applied to this collective); else
  // comm_compute_share's processor sharing (both at 1 / (1 + share)).
  // gap_s: the compute since the previous collective was launched (the
  // bench's --gap-us). What a collective takes from compute grows with it (a
  // late peer's thread has had longer to fall behind), so curves measured at
  // several gaps are interpolated linearly in the gap, clamped to the gaps
  // measured; gap_s < 0 takes the smallest gap's curve.
  Overlapped overlapped(double bytes, int world, Collective c = Collective::all_reduce, double gap_s = -1) const;

  int nodes(int world) const { return (world + ranks_per_node - 1) / ranks_per_node; }
  int ranks_in_node(int world) const { return world < ranks_per_node ? world : ranks_per_node; }

  double ring_s(double bytes, int world) const;
  double tree_s(double bytes, int world) const;
  double hierarchical_s(double bytes, int world) const;
  // The measured curve's time, or < 0 when there is none for this world size and collective.
  double measured_s(double bytes, int world, Collective c = Collective::all_reduce) const;
  // The measured curve if any, else the configured algorithm's cost plus launch_us; 0 at world 1.
  double allreduce_s(double bytes, int world) const;
  // A reduce-scatter or an all-gather of a buffer of `bytes` (its full,
  // unsharded size; each rank ends with or contributes bytes / world). A ring
  // all-reduce is exactly one of each, so each costs half its bandwidth and
  // latency terms, (p−1)/p · S/B + (p−1)·α, plus launch_us. From a measured
  // all-reduce curve: half of it (assumption: MPI's large-message all-reduce
  // is a reduce-scatter then an all-gather, ring or Rabenseifner). 0 at world 1.
  double half_allreduce_s(double bytes, int world) const;
  // What one collective of `bytes` (the full buffer) costs on idle ranks: its
  // own measured curve where there is one (vit_allreduce_bench measures all
  // three), else allreduce_s or half_allreduce_s.
  double collective_s(double bytes, int world, Collective c) const;
  // One line: "t4-pcie (10 GB/s, 5.7 us) x8 | roce-25g (2.81 GB/s, 14 us) x1, ring"
  std::string describe() const;
};

// Named presets: links ("t4-pcie", "nvlink-a100", "nvlink-h100", "roce-25g",
// "roce-100g", "ib-hdr", "ib-ndr") and machines built from them ("t4-node",
// "dgx-a100", "dgx-h100"). Throws std::invalid_argument listing the names.
Link link_preset(const std::string& name);
NetworkModel network_preset(const std::string& name);
std::vector<std::string> link_preset_names();
std::vector<std::string> network_preset_names();

nlohmann::json to_json(const NetworkModel& n);
NetworkModel network_from_json(const nlohmann::json& j);  // fields missing from j keep their defaults
NetworkModel load_network(const std::string& path);       // throws naming the file

}  // namespace vitscale::scaling
