#include "tools/scaling/network_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace vitscale::scaling {

namespace {

// Ethernet and InfiniBand presets assume NCCL moves large messages at 90% of
// the line rate (protocol headers and flow control take the rest). This is an
// assumption, stated once here and in every source string that uses it.
constexpr double kNetEfficiency = 0.9;

// NCCL's own latency model, src/graph/tuning.cc (2.2x): hwLat for Ring/Simple
// is 3.4 us over NVLink, 5.7 us over PCIe and 14 us over the network, and
// baseLat (per collective) is 8.4 us.
constexpr double kNcclNvlinkLatUs = 3.4, kNcclPciLatUs = 5.7, kNcclNetLatUs = 14.0, kNcclBaseLatUs = 8.4;

Link net_link(const char* name, double gbit, const char* what) {
  char source[400];
  std::snprintf(source, sizeof source,
                "%s: %.0f Gb/s line rate = %.3f GB/s; x%.2f for protocol overhead (assumption) = %.3f GB/s; "
                "latency %.1f us = NCCL tuning.cc hwLat NET Ring/Simple",
                what, gbit, gbit / 8.0, kNetEfficiency, gbit / 8.0 * kNetEfficiency, kNcclNetLatUs);
  return Link{name, gbit / 8.0 * kNetEfficiency, kNcclNetLatUs, source};
}

}  // namespace

AllReduceAlgo parse_algo(const std::string& name) {
  if (name == "ring") return AllReduceAlgo::ring;
  if (name == "tree") return AllReduceAlgo::tree;
  if (name == "hierarchical") return AllReduceAlgo::hierarchical;
  if (name == "best") return AllReduceAlgo::best;
  throw std::invalid_argument("all-reduce algorithm '" + name + "' is not one of: ring, tree, hierarchical, best");
}

const char* algo_name(AllReduceAlgo a) {
  switch (a) {
    case AllReduceAlgo::ring:
      return "ring";
    case AllReduceAlgo::tree:
      return "tree";
    case AllReduceAlgo::hierarchical:
      return "hierarchical";
    case AllReduceAlgo::best:
      return "best";
  }
  return "?";
}

Collective parse_collective(const std::string& name) {
  if (name == "allreduce") return Collective::all_reduce;
  if (name == "reduce_scatter") return Collective::reduce_scatter;
  if (name == "allgather") return Collective::all_gather;
  throw std::invalid_argument("collective '" + name + "' is not one of: allreduce, reduce_scatter, allgather");
}

std::vector<Collective> parse_collectives(const std::string& comma_list) {
  std::vector<Collective> kinds;
  std::stringstream list(comma_list);
  for (std::string item; std::getline(list, item, ',');) kinds.push_back(parse_collective(item));
  return kinds;
}

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::all_reduce:
      return "allreduce";
    case Collective::reduce_scatter:
      return "reduce_scatter";
    case Collective::all_gather:
      return "allgather";
  }
  return "?";
}

double ring_allreduce_s(double bytes, int p, double bandwidth_Bps, double latency_s) {
  if (p <= 1) return 0.0;
  if (bandwidth_Bps <= 0) throw std::invalid_argument("ring all-reduce: bandwidth must be positive");
  return 2.0 * (p - 1) / p * bytes / bandwidth_Bps + 2.0 * (p - 1) * latency_s;
}

double tree_allreduce_s(double bytes, int p, double bandwidth_Bps, double latency_s) {
  if (p <= 1) return 0.0;
  if (bandwidth_Bps <= 0) throw std::invalid_argument("tree all-reduce: bandwidth must be positive");
  // Pipelined: each rank receives and sends the whole buffer once on the way
  // up and once on the way down; the depth sets the latency.
  return 2.0 * bytes / bandwidth_Bps + 2.0 * std::ceil(std::log2(static_cast<double>(p))) * latency_s;
}

double NetworkModel::ring_s(double bytes, int world) const {
  if (nodes(world) <= 1) return ring_allreduce_s(bytes, world, intra.bandwidth_GBps * 1e9, intra.latency_us * 1e-6);
  // A ring over several nodes: its slowest link sets the pace, and every step
  // waits for the slowest hop.
  const double bw = std::min(intra.bandwidth_GBps, inter.bandwidth_GBps * nics_per_node) * 1e9;
  const double lat = std::max(intra.latency_us, inter.latency_us) * 1e-6;
  return ring_allreduce_s(bytes, world, bw, lat);
}

double NetworkModel::tree_s(double bytes, int world) const {
  if (nodes(world) <= 1) return tree_allreduce_s(bytes, world, intra.bandwidth_GBps * 1e9, intra.latency_us * 1e-6);
  const double bw = std::min(intra.bandwidth_GBps, inter.bandwidth_GBps * nics_per_node) * 1e9;
  const double lat = std::max(intra.latency_us, inter.latency_us) * 1e-6;
  return tree_allreduce_s(bytes, world, bw, lat);
}

double NetworkModel::hierarchical_s(double bytes, int world) const {
  const int g = ranks_in_node(world), n = nodes(world);
  const double intra_bw = intra.bandwidth_GBps * 1e9, intra_lat = intra.latency_us * 1e-6;
  // Reduce-scatter then all-gather inside the node: together one ring all-reduce.
  double t = ring_allreduce_s(bytes, g, intra_bw, intra_lat);
  if (n > 1) {
    // Each rank all-reduces its 1/g shard across nodes over its share of the NICs.
    const double share = inter.bandwidth_GBps * 1e9 * nics_per_node / g;
    t += ring_allreduce_s(bytes / g, n, share, inter.latency_us * 1e-6);
  }
  return t;
}

namespace {
// Piecewise linear in bytes through ascending points, extended beyond the
// ends with the nearest segment's slope (one point: proportional to bytes).
template <class P, class Get>
double interpolate(const std::vector<P>& pts, double bytes, Get value) {
  if (pts.size() == 1) return value(pts[0]) * bytes / pts[0].bytes;
  std::size_t i = 1;
  while (i + 1 < pts.size() && pts[i].bytes < bytes) ++i;
  const P &a = pts[i - 1], &b = pts[i];
  return std::max(0.0, value(a) + (value(b) - value(a)) * (bytes - a.bytes) / (b.bytes - a.bytes));
}
}  // namespace

double NetworkModel::measured_s(double bytes, int world, Collective kind) const {
  for (const auto& c : measured)
    if (c.world == world && c.collective == kind && !c.points.empty())
      return interpolate(c.points, bytes, [](const Point& p) { return p.seconds; });
  return -1.0;
}

NetworkModel::Overlapped NetworkModel::overlapped(double bytes, int world, Collective kind, double gap_s) const {
  // This collective's own contended curves first, then the all-reduce's.
  for (const Collective c : {kind, Collective::all_reduce}) {
    // (gap, wall, lost) of each curve at this size, by gap.
    struct AtGap {
      double gap_s, wall, lost;
    };
    std::vector<AtGap> at;
    for (const auto& curve : contended) {
      if (curve.world != world || curve.collective != c || curve.progress != mpi_progress || curve.points.empty())
        continue;
      at.push_back({1e-6 * curve.gap_us,
                    interpolate(curve.points, bytes, [](const ContendedPoint& p) { return p.seconds; }),
                    interpolate(curve.points, bytes, [](const ContendedPoint& p) { return p.compute_lost_s; })});
    }
    if (at.empty()) continue;
    std::sort(at.begin(), at.end(), [](const AtGap& a, const AtGap& b) { return a.gap_s < b.gap_s; });
    AtGap pick = at.front();
    if (gap_s >= at.back().gap_s) {
      pick = at.back();
    } else if (gap_s > at.front().gap_s) {
      const auto hi = std::find_if(at.begin(), at.end(), [&](const AtGap& a) { return a.gap_s >= gap_s; });
      const AtGap& lo = *(hi - 1);
      const double f = hi->gap_s > lo.gap_s ? (gap_s - lo.gap_s) / (hi->gap_s - lo.gap_s) : 0.0;
      pick = {gap_s, lo.wall + f * (hi->wall - lo.wall), lo.lost + f * (hi->lost - lo.lost)};
    }
    if (pick.wall <= 0) continue;
    const double alone = collective_s(bytes, world, c);
    // Rates stay in (0, 1]: a measured point faster than the idle curve (noise)
    // means no slowdown, and compute keeps a sliver so the replay always advances.
    return {std::clamp(alone / pick.wall, 1e-3, 1.0), std::clamp(1.0 - pick.lost / pick.wall, 0.02, 1.0)};
  }
  const double shared = 1.0 / (1.0 + comm_compute_share);
  return {shared, shared};
}

double NetworkModel::allreduce_s(double bytes, int world) const {
  if (world <= 1) return 0.0;
  if (const double m = measured_s(bytes, world); m >= 0) return m;
  double t = 0;
  switch (algo) {
    case AllReduceAlgo::ring:
      t = ring_s(bytes, world);
      break;
    case AllReduceAlgo::tree:
      t = tree_s(bytes, world);
      break;
    case AllReduceAlgo::hierarchical:
      t = hierarchical_s(bytes, world);
      break;
    case AllReduceAlgo::best:
      t = std::min({ring_s(bytes, world), tree_s(bytes, world), hierarchical_s(bytes, world)});
      break;
  }
  return t + launch_us * 1e-6;
}

double NetworkModel::half_allreduce_s(double bytes, int world) const {
  if (world <= 1) return 0.0;
  const double launch = measured_s(bytes, world) >= 0 ? 0.0 : launch_us * 1e-6;  // a measured curve includes it
  return 0.5 * (allreduce_s(bytes, world) - launch) + launch;
}

double NetworkModel::collective_s(double bytes, int world, Collective c) const {
  if (world <= 1) return 0.0;
  if (c == Collective::all_reduce) return allreduce_s(bytes, world);
  if (const double m = measured_s(bytes, world, c); m >= 0) return m;
  return half_allreduce_s(bytes, world);
}

std::string NetworkModel::describe() const {
  char line[400];
  std::snprintf(line, sizeof line, "%s: %s (%.3g GB/s, %.3g us) x%d per node | %s (%.3g GB/s, %.3g us) x%d NIC, %s",
                name.c_str(), intra.name.c_str(), intra.bandwidth_GBps, intra.latency_us, ranks_per_node,
                inter.name.c_str(), inter.bandwidth_GBps, inter.latency_us, nics_per_node, algo_name(algo));
  return line;
}

Link link_preset(const std::string& name) {
  if (name == "t4-pcie")
    return Link{name, 10.0, kNcclPciLatUs,
                "NVIDIA T4 datasheet: PCIe Gen3 x16, no NVLink. NCCL's topology model (src/graph/topo.h) rates "
                "Gen3 x16 at PCI_BW = 12 GB/s, charges GPU P2P through an Intel root complex 6/5 of that "
                "(INTEL_P2P_OVERHEAD) = 10 GB/s, and a Skylake socket link at SKL_QPI_BW = 10 GB/s: 10 GB/s. "
                "Latency 5.7 us = NCCL tuning.cc hwLat PCI Ring/Simple"};
  if (name == "nvlink-a100")
    return Link{name, 240.0, kNcclNvlinkLatUs,
                "A100 SXM: 12 NVLink3 links (NVIDIA A100 datasheet, 600 GB/s both directions); NCCL topo.h "
                "SM80_NVLINK_BW = 20 GB/s per link x 12 = 240 GB/s. Latency 3.4 us = NCCL hwLat NVLink Ring/Simple"};
  if (name == "nvlink-h100")
    return Link{name, 370.8, kNcclNvlinkLatUs,
                "H100 SXM: 18 NVLink4 links (NVIDIA H100 datasheet, 900 GB/s both directions); NCCL topo.h "
                "SM90_NVLINK_BW = 20.6 GB/s per link x 18 = 370.8 GB/s. Latency 3.4 us = NCCL hwLat NVLink "
                "Ring/Simple"};
  if (name == "roce-25g") return net_link("roce-25g", 25, "RoCE v2 over 25 GbE");
  if (name == "roce-100g") return net_link("roce-100g", 100, "RoCE v2 over 100 GbE (NCCL topo.h NET_BW = 12 GB/s)");
  if (name == "ib-hdr") return net_link("ib-hdr", 200, "InfiniBand HDR, one 200 Gb/s port per NIC");
  if (name == "ib-ndr") return net_link("ib-ndr", 400, "InfiniBand NDR, one 400 Gb/s port per NIC");
  std::string names;
  for (const auto& n : link_preset_names()) names += " " + n;
  throw std::invalid_argument("no link preset '" + name + "'; presets:" + names);
}

NetworkModel network_preset(const std::string& name) {
  NetworkModel n;
  n.name = name;
  n.launch_us = kNcclBaseLatUs;
  if (name == "t4-node" || name == "t4-node-100g") {
    // The paper's nodes: 8 T4 on PCIe, RoCE between nodes. The paper does not
    // give the Ethernet speed; 25 GbE is the default, 100 GbE the alternative.
    n.intra = link_preset("t4-pcie");
    n.inter = link_preset(name == "t4-node" ? "roce-25g" : "roce-100g");
    n.ranks_per_node = 8;
    n.nics_per_node = 1;
    return n;
  }
  if (name == "dgx-a100") {
    // DGX A100 datasheet: 8 A100 on NVSwitch, 8 single-port HDR NICs for compute.
    n.intra = link_preset("nvlink-a100");
    n.inter = link_preset("ib-hdr");
    n.ranks_per_node = 8;
    n.nics_per_node = 8;
    return n;
  }
  if (name == "dgx-h100") {
    // DGX H100 datasheet: 8 H100 on NVSwitch, 8 ConnectX-7 400 Gb/s NICs for compute.
    n.intra = link_preset("nvlink-h100");
    n.inter = link_preset("ib-ndr");
    n.ranks_per_node = 8;
    n.nics_per_node = 8;
    return n;
  }
  std::string names;
  for (const auto& s : network_preset_names()) names += " " + s;
  throw std::invalid_argument("no network preset '" + name + "'; presets:" + names +
                              " (or --network-json with a measured model)");
}

std::vector<std::string> link_preset_names() {
  return {"t4-pcie", "nvlink-a100", "nvlink-h100", "roce-25g", "roce-100g", "ib-hdr", "ib-ndr"};
}

std::vector<std::string> network_preset_names() { return {"t4-node", "t4-node-100g", "dgx-a100", "dgx-h100"}; }

namespace {
nlohmann::json link_json(const Link& l) {
  return {{"name", l.name}, {"bandwidth_GBps", l.bandwidth_GBps}, {"latency_us", l.latency_us}, {"source", l.source}};
}
Link link_from(const nlohmann::json& j, Link l) {
  l.name = j.value("name", l.name);
  l.bandwidth_GBps = j.value("bandwidth_GBps", l.bandwidth_GBps);
  l.latency_us = j.value("latency_us", l.latency_us);
  l.source = j.value("source", l.source);
  return l;
}
}  // namespace

nlohmann::json to_json(const NetworkModel& n) {
  return {{"name", n.name},
          {"intra", link_json(n.intra)},
          {"inter", link_json(n.inter)},
          {"ranks_per_node", n.ranks_per_node},
          {"nics_per_node", n.nics_per_node},
          {"launch_us", n.launch_us},
          {"comm_compute_share", n.comm_compute_share},
          {"algo", algo_name(n.algo)},
          {"mpi_progress", n.mpi_progress},
          {"measured",
           [&] {
             nlohmann::json m = nlohmann::json::array();
             for (const auto& c : n.measured) {
               nlohmann::json pts = nlohmann::json::array();
               for (const auto& p : c.points) pts.push_back({p.bytes, p.seconds});
               m.push_back({{"world", c.world}, {"collective", collective_name(c.collective)}, {"points", pts}});
             }
             return m;
           }()},
          {"contended", [&] {
             nlohmann::json m = nlohmann::json::array();
             for (const auto& c : n.contended) {
               nlohmann::json pts = nlohmann::json::array();
               for (const auto& p : c.points) pts.push_back({p.bytes, p.seconds, p.compute_lost_s});
               m.push_back({{"world", c.world},
                            {"collective", collective_name(c.collective)},
                            {"progress", c.progress},
                            {"gap_us", c.gap_us},
                            {"points", pts}});
             }
             return m;
           }()}};
}

NetworkModel network_from_json(const nlohmann::json& j) {
  NetworkModel n;
  n.name = j.value("name", std::string("custom"));
  if (j.contains("intra")) n.intra = link_from(j.at("intra"), n.intra);
  if (j.contains("inter")) n.inter = link_from(j.at("inter"), n.inter);
  n.ranks_per_node = j.value("ranks_per_node", n.ranks_per_node);
  n.nics_per_node = j.value("nics_per_node", n.nics_per_node);
  n.launch_us = j.value("launch_us", n.launch_us);
  n.comm_compute_share = j.value("comm_compute_share", n.comm_compute_share);
  n.algo = parse_algo(j.value("algo", std::string("ring")));
  n.mpi_progress = j.value("mpi_progress", n.mpi_progress);
  if (j.contains("measured")) {
    for (const auto& c : j.at("measured")) {
      NetworkModel::Curve curve;
      curve.world = c.at("world").get<int>();
      curve.collective = parse_collective(c.value("collective", std::string("allreduce")));
      for (const auto& p : c.at("points")) curve.points.push_back({p.at(0).get<double>(), p.at(1).get<double>()});
      std::sort(curve.points.begin(), curve.points.end(),
                [](const NetworkModel::Point& a, const NetworkModel::Point& b) { return a.bytes < b.bytes; });
      n.measured.push_back(curve);
    }
  }
  if (j.contains("contended")) {
    for (const auto& c : j.at("contended")) {
      NetworkModel::ContendedCurve curve;
      curve.world = c.at("world").get<int>();
      curve.collective = parse_collective(c.value("collective", std::string("allreduce")));
      curve.progress = c.value("progress", std::string());
      curve.gap_us = c.value("gap_us", 0.0);
      for (const auto& p : c.at("points"))
        curve.points.push_back({p.at(0).get<double>(), p.at(1).get<double>(), p.at(2).get<double>()});
      std::sort(curve.points.begin(), curve.points.end(),
                [](const auto& a, const auto& b) { return a.bytes < b.bytes; });
      n.contended.push_back(curve);
    }
  }
  if (n.ranks_per_node < 1 || n.nics_per_node < 1)
    throw std::invalid_argument("network '" + n.name + "': ranks_per_node and nics_per_node must be >= 1");
  if (n.intra.bandwidth_GBps <= 0) throw std::invalid_argument("network '" + n.name + "': intra bandwidth must be > 0");
  if (n.comm_compute_share < 0 || n.comm_compute_share > 1)
    throw std::invalid_argument("network '" + n.name + "': comm_compute_share must be in [0, 1]");
  return n;
}

NetworkModel load_network(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open network model '" + path + "'");
  try {
    return network_from_json(nlohmann::json::parse(in));
  } catch (const std::exception& e) {
    throw std::runtime_error("network model '" + path + "': " + e.what());
  }
}

}  // namespace vitscale::scaling
