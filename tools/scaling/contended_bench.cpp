// vit_contended_bench — what a gradient all-reduce (and ZeRO's reduce-scatter
// and all-gather) costs on CPU ranks while the same core is computing
// backward (the overlap_comm case).
//
// vit_allreduce_bench times collectives on idle cores. During an overlapped
// backward the communicator's thread (parallel/mpi_communicator.h) runs each
// bucket's collective on the core that also computes, so two things change:
// the collective takes longer (its thread gets the core only part of the
// time, and it cannot finish before the peer's thread, on a busy core too, has
// joined), and compute loses the share of the core the communicator's thread
// takes, busy-waiting for a late peer included. This bench reproduces one
// overlapped backward on every rank, the way the reducer runs it:
//
//   a "step": --buckets times [compute for --gap-us, launch a collective of
//   S bytes through MpiCommunicator without waiting]; then wait for all.
//   Each collective of --collectives gets its own curve (S: the full buffer;
//   the reduce-scatter's blocks and the all-gather's are ShardLayout's split).
//   Before each step the same compute runs alone, with no collective, so the
//   machine's drift over seconds cancels.
//
// Per step: compute lost = (end of the step's compute) − (the same compute
// alone), and the engine's busy time on the collectives (as vit_train's
// comm_total counts it), each divided by the number of buckets. Medians over
// steps (as vit_train's figures are: the hypervisor steals this VM's cores in
// spikes), averaged over ranks, become a "contended" curve of the network
// model (network_model.h) for the world size and progress mode
// (VITSCALE_MPI_PROGRESS, as in vit_train), added to the model file
// vit_allreduce_bench wrote; vit_scaling_sim replays buckets that overlap
// compute at those rates (timeline.h).
//   mpirun -np 2 --bind-to core vit_allreduce_bench --out net.json
//   mpirun -np 2 --bind-to core vit_contended_bench --network net.json
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu/linear.h"
#include "parallel/bootstrap.h"
#include "parallel/bucket_plan.h"
#include "parallel/comm_options.h"
#include "parallel/mpi_communicator.h"
#include "tools/scaling/network_model.h"

using namespace vitscale;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// One unit of stand-in compute: one of the MLP's GEMMs of the study's model
// (64 token rows, width 256 -> 512, through OpenBLAS like backward), a few
// hundred microseconds. Its ~0.7 MB working set lives in L2 as backward's
// does, so a communicator thread that evicts it costs what it costs there.
class ComputeUnit {
 public:
  void run() { cpu::linear_forward(out_.data(), in_.data(), weight_.data(), bias_.data(), kRows, kIn, kOut); }
  float sink() const { return out_[0]; }

 private:
  static constexpr std::int64_t kRows = 64, kIn = 256, kOut = 512;
  std::vector<float> in_ = std::vector<float>(kRows * kIn, 0.5f);      // (64, 256)
  std::vector<float> weight_ = std::vector<float>(kOut * kIn, 0.01f);  // (512, 256)
  std::vector<float> bias_ = std::vector<float>(kOut, 0.0f);           // (512)
  std::vector<float> out_ = std::vector<float>(kRows * kOut, 0.0f);    // (64, 512)
};

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  CLI::App app{"vit_contended_bench: all-reduce cost while the same core computes (overlap_comm on CPU ranks)"};
  std::string network;
  int steps = 15, buckets = 16;
  double gap_us = 1000, max_mib = 16;
  app.add_option("--network", network, "network model JSON from vit_allreduce_bench; the curve is added to it")
      ->required();
  app.add_option("--steps", steps, "timed steps per message size")->check(CLI::PositiveNumber);
  app.add_option("--buckets", buckets, "collectives launched per step")->check(CLI::PositiveNumber);
  app.add_option("--gap-us", gap_us, "compute before each launch, microseconds")->check(CLI::NonNegativeNumber);
  app.add_option("--max-mib", max_mib, "largest message, MiB (memory: buckets x this)")->check(CLI::PositiveNumber);
  std::string collectives = "allreduce,reduce_scatter,allgather";
  app.add_option("--collectives", collectives, "comma-separated: allreduce, reduce_scatter, allgather");
  const LaunchInfo launch = mpi.launch_info();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return launch.rank == 0 ? app.exit(e) : 0;
  }
  if (launch.world_size < 2) {
    if (launch.rank == 0) std::fprintf(stderr, "vit_contended_bench: needs at least 2 ranks (mpirun -np 2 ...)\n");
    return 1;
  }
  scaling::NetworkModel model;
  std::vector<scaling::Collective> kinds;
  try {
    model = scaling::load_network(network);  // every rank: a bad file stops all of them before measuring
    kinds = scaling::parse_collectives(collectives);
  } catch (const std::exception& e) {
    if (launch.rank == 0) std::fprintf(stderr, "vit_contended_bench: %s\n", e.what());
    return 1;
  }
  CommOptions options;
  if (const char* p = std::getenv("VITSCALE_MPI_PROGRESS"); p && *p) options.mpi_progress = parse_mpi_progress(p);
  MpiCommunicator comm(options);

  ComputeUnit unit;
  const auto t_warm = Clock::now();
  for (int i = 0; i < 50; ++i) unit.run();  // warm caches and clocks
  const double warm_unit_s = since(t_warm) / 50;
  const auto gap_units = std::max(1L, static_cast<long>(gap_us * 1e-6 / warm_unit_s + 0.5));
  auto compute_gap = [&] {
    for (long i = 0; i < gap_units; ++i) unit.run();
  };

  const auto max_elems = static_cast<std::size_t>(max_mib * (1 << 20) / 4);
  const auto nb = static_cast<std::size_t>(buckets);
  std::vector<float> buf(max_elems * nb, 1.0f);     // one slice per bucket in flight
  std::vector<float> shards(max_elems * nb, 0.0f);  // the reduce-scatter's receive blocks (generous)
  const int world = launch.world_size;
  // One collective on bucket b's slice of n elements, its blocks split by
  // ShardLayout (`counts`, set up per size outside the timed steps).
  auto issue = [&](scaling::Collective kind, std::size_t b, std::size_t n, std::span<const std::int64_t> counts) {
    const TensorView slice(buf.data() + b * n, DType::f32, {static_cast<std::int64_t>(n)});
    switch (kind) {
      case scaling::Collective::reduce_scatter:
        return comm.reduce_scatter(
            slice, TensorView(shards.data() + b * n, DType::f32, {counts[static_cast<std::size_t>(launch.rank)]}),
            counts);
      case scaling::Collective::all_gather:
        return comm.all_gather(slice, counts);
      case scaling::Collective::all_reduce:
        break;
    }
    return comm.all_reduce(slice);
  };
  std::vector<scaling::NetworkModel::ContendedCurve> curves;
  const std::string progress = mpi_progress_name(options.mpi_progress);
  if (launch.rank == 0)
    std::printf("compute unit %.1f us; %ld units between launches, %d buckets a step; progress: %s\n",
                1e6 * warm_unit_s, gap_units, buckets, progress.c_str());
  for (const scaling::Collective kind : kinds) {
    scaling::NetworkModel::ContendedCurve curve;
    curve.world = world;
    curve.collective = kind;
    curve.progress = progress;
    curve.gap_us = gap_us;
    for (std::size_t n = 256; n <= max_elems; n *= 4) {
      const std::vector<std::int64_t> counts = ShardLayout(static_cast<std::int64_t>(n), world).counts();
      std::vector<double> busy, lost;
      for (int r = 0; r < steps + 1; ++r) {
        comm.barrier().wait();  // every step starts together, as after the previous step's optimizer
        const auto t_alone = Clock::now();
        for (int b = 0; b < buckets; ++b) compute_gap();
        const double alone = since(t_alone);
        comm.barrier().wait();
        const auto t0 = Clock::now();
        std::vector<CommRequest> reqs;
        for (std::size_t b = 0; b < nb; ++b) {
          compute_gap();
          reqs.push_back(issue(kind, b, n, counts));
        }
        const double computed = since(t0);
        double step_busy = 0;
        for (auto& q : reqs) {
          q.wait();
          step_busy += q.busy_seconds();
        }
        if (r == 0) continue;  // warms the path
        busy.push_back(step_busy / buckets);
        lost.push_back(std::max(0.0, computed - alone) / buckets);
      }
      std::vector<double> m = {median(busy), median(lost)};
      comm.all_reduce_host(m, HostReduce::sum);
      const double d = m[0] / world, l = m[1] / world;
      curve.points.push_back({static_cast<double>(n) * 4, d, l});
      if (launch.rank == 0)
        std::printf("%-14s %10zu bytes  %9.1f us per collective (idle: %7.1f)  %9.1f us of compute lost per bucket\n",
                    scaling::collective_name(kind), n * 4, 1e6 * d,
                    1e6 * model.collective_s(static_cast<double>(n) * 4, world, kind), 1e6 * l);
    }
    curves.push_back(curve);
  }
  if (launch.rank == 0) {
    for (const auto& curve : curves) {
      std::erase_if(model.contended, [&](const auto& c) {
        return c.world == curve.world && c.collective == curve.collective && c.progress == curve.progress &&
               c.gap_us == curve.gap_us;  // curves at other gaps stay: the simulator interpolates between them
      });
      model.contended.push_back(curve);
    }
    std::ofstream f(network);
    f << scaling::to_json(model).dump(1) << "\n";
    std::printf("added %zu %d-rank contended curve(s) (progress: %s) to %s (sink %.3f)\n", curves.size(), world,
                progress.c_str(), network.c_str(), unit.sink());
  }
  return 0;
}
