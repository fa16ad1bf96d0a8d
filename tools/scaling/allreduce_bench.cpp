// vit_allreduce_bench — measures MPI_Allreduce (fp32 sum, in place) on the
// ranks it is launched with, and beside it the reduce-scatter and all-gather
// of ZeRO 1-3 through the calls MpiCommunicator makes (MPI_Reduce_scatter with
// per-rank counts, in-place MPI_Allgatherv), one curve each; it fits the ring
// model of network_model.h to the all-reduce,
//   t(S) = 2(p−1)/p · S / B + 2(p−1) · α,
// by least squares on relative error over message sizes, and keeps the
// measured curve itself (CPU caches make the cost per byte depend on the size;
// the simulator uses the curve where it has one for the world size). Writes a
// network model JSON that vit_scaling_sim takes with --network-json; with
// --merge the curve is added to an existing file (one curve per world size).
//   mpirun -np 2 vit_allreduce_bench --out net.json
//   mpirun -np 4 --oversubscribe vit_allreduce_bench --out net.json --merge
//
// The model is of this machine's CPU ranks: one node, reductions on the cores
// that also compute (comm_compute_share 1).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "parallel/bucket_plan.h"
#include "tools/scaling/network_model.h"

namespace {

using vitscale::scaling::Collective;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void check(int rc, const char* call, std::size_t n) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  std::fprintf(stderr, "vit_allreduce_bench: %s of %zu floats failed: %s\n", call, n, text);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// One collective over the first n floats of buf (n elements: the full,
// unsharded buffer), its blocks split over the ranks by ShardLayout as
// MpiCommunicator's callers split them. prepare() sets the split up outside
// the timed region; run() is the MPI call alone.
class CollectiveCall {
 public:
  CollectiveCall(std::vector<float>& buf, int world, int rank) : buf_(buf), world_(world), rank_(rank) {}
  void prepare(std::size_t n) {
    n_ = n;
    counts_.clear();
    displs_.clear();
    int at = 0;
    for (const std::int64_t c : vitscale::ShardLayout(static_cast<std::int64_t>(n), world_).counts()) {
      counts_.push_back(static_cast<int>(c));
      displs_.push_back(at);
      at += static_cast<int>(c);
    }
    shard_.resize(static_cast<std::size_t>(counts_[static_cast<std::size_t>(rank_)]) + 1);
  }
  void run(Collective c) {
    const int count = static_cast<int>(n_);
    switch (c) {
      case Collective::all_reduce:
        check(MPI_Allreduce(MPI_IN_PLACE, buf_.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", n_);
        break;
      case Collective::reduce_scatter:
        check(MPI_Reduce_scatter(buf_.data(), shard_.data(), counts_.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Reduce_scatter", n_);
        break;
      case Collective::all_gather:
        check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf_.data(), counts_.data(), displs_.data(), MPI_FLOAT,
                             MPI_COMM_WORLD),
              "MPI_Allgatherv", n_);
        break;
    }
  }

 private:
  std::vector<float>& buf_;
  std::vector<float> shard_;  // reduce-scatter's receive buffer (this rank's block)
  std::vector<int> counts_, displs_;
  std::size_t n_ = 0;
  int world_, rank_;
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  CLI::App app{"vit_allreduce_bench: fit latency and bandwidth of MPI_Allreduce for vit_scaling_sim"};
  std::string out = "network.json", name = "cpu-mpi";
  int reps = 20;
  double max_mib = 16;
  app.add_option("--out", out, "network model JSON (written by rank 0)");
  app.add_option("--name", name, "the model's name");
  app.add_option("--reps", reps, "timed repetitions per size")->check(CLI::PositiveNumber);
  app.add_option("--max-mib", max_mib, "largest message, MiB")->check(CLI::PositiveNumber);
  bool merge = false;
  app.add_flag("--merge", merge, "add this world size's curves to an existing --out file");
  std::string collectives = "allreduce,reduce_scatter,allgather";
  app.add_option("--collectives", collectives,
                 "comma-separated: allreduce, reduce_scatter, allgather (the fit: allreduce)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = rank == 0 ? app.exit(e) : 0;
    MPI_Finalize();
    return code;
  }
  if (world < 2) {
    if (rank == 0) std::fprintf(stderr, "vit_allreduce_bench: needs at least 2 ranks (mpirun -np 2 ...)\n");
    MPI_Finalize();
    return 1;
  }
  std::vector<Collective> kinds;
  try {
    kinds = vitscale::scaling::parse_collectives(collectives);
  } catch (const std::invalid_argument& e) {
    if (rank == 0) std::fprintf(stderr, "vit_allreduce_bench: --collectives: %s\n", e.what());
    MPI_Finalize();
    return 1;
  }
  std::vector<float> buf(static_cast<std::size_t>(max_mib * (1 << 20) / 4), 1.0f);
  CollectiveCall call(buf, world, rank);
  std::vector<vitscale::scaling::NetworkModel::Curve> curves;
  std::vector<double> xs, ys;  // the all-reduce's, for the fit
  for (const Collective kind : kinds) {
    vitscale::scaling::NetworkModel::Curve curve;
    curve.world = world;
    curve.collective = kind;
    for (std::size_t n = 256; n * 4 <= static_cast<std::size_t>(max_mib * (1 << 20)); n *= 2) {
      std::vector<double> t;
      call.prepare(n);
      for (int r = 0; r < reps + 2; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        call.run(kind);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank's time
        if (r >= 2) t.push_back(dt);
      }
      const double bytes = static_cast<double>(n) * 4, seconds = median(t);
      curve.points.push_back({bytes, seconds});
      if (kind == Collective::all_reduce) xs.push_back(bytes), ys.push_back(seconds);
      // Bus bandwidth: what each rank moves, 2(p−1)/p · S for the all-reduce, (p−1)/p · S for the others.
      const double moved = (kind == Collective::all_reduce ? 2.0 : 1.0) * (world - 1) / world * bytes;
      if (rank == 0)
        std::printf("%-14s %10zu bytes  %9.1f us  %7.3f GB/s bus\n", vitscale::scaling::collective_name(kind), n * 4,
                    1e6 * seconds, moved / seconds / 1e9);
    }
    curves.push_back(curve);
  }
  if (xs.size() < 2) {
    if (rank == 0) std::fprintf(stderr, "vit_allreduce_bench: the fit needs the allreduce curve (--collectives)\n");
    MPI_Finalize();
    return 1;
  }
  // Least squares on relative error, t = a + b·S (weights 1/t²): small and large
  // messages count alike. Then B = 2(p−1)/p / b and α = a / (2(p−1)).
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double w = 1.0 / (ys[i] * ys[i]);
    sw += w, sx += w * xs[i], sy += w * ys[i], sxx += w * xs[i] * xs[i], sxy += w * xs[i] * ys[i];
  }
  const double b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx), a = std::max(0.0, (sy - b * sx) / sw);
  if (rank == 0) {
    vitscale::scaling::NetworkModel m;
    if (merge) {
      try {
        m = vitscale::scaling::load_network(out);
      } catch (const std::exception&) {
        // no file yet: start one
      }
    }
    // Each curve measured now replaces its own (world, collective) one; the
    // collectives not asked for keep theirs (as vit_contended_bench merges).
    for (const auto& curve : curves) {
      std::erase_if(m.measured,
                    [&](const auto& c) { return c.world == curve.world && c.collective == curve.collective; });
      m.measured.push_back(curve);
    }
    if (merge && m.intra.bandwidth_GBps > 0) {
      std::ofstream f(out);
      f << vitscale::scaling::to_json(m).dump(1) << "\n";
      std::printf("added the %d-rank curves to %s\n", world, out.c_str());
      MPI_Finalize();
      return 0;
    }
    m.name = name;
    m.intra.name = name;
    m.intra.bandwidth_GBps = 2.0 * (world - 1) / world / b / 1e9;
    m.intra.latency_us = 1e6 * a / (2.0 * (world - 1));
    char src[300];
    std::snprintf(src, sizeof src,
                  "measured: MPI_Allreduce on %d ranks of this machine, %zu sizes 1 KiB..%.0f MiB, "
                  "median of %d, least-squares fit of the ring model",
                  world, xs.size(), max_mib, reps);
    m.intra.source = src;
    m.inter = m.intra;
    m.ranks_per_node = 1 << 20;  // one machine
    m.launch_us = 0;
    m.comm_compute_share = 1.0;  // CPU ranks: the reduction runs on the compute cores
    std::ofstream f(out);
    f << vitscale::scaling::to_json(m).dump(1) << "\n";
    std::printf("fit: bandwidth %.3f GB/s, latency %.2f us per step -> %s\n", m.intra.bandwidth_GBps,
                m.intra.latency_us, out.c_str());
  }
  MPI_Finalize();
  return 0;
}
