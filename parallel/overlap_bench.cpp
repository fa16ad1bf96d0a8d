// vit_overlap_bench — how much gradient communication the bucketed reducer
// hides behind backward on CPU ranks (docs/results/overlap_cpu.md).
//
//   mpirun -np 2 vit_overlap_bench [--progress thread|polling|nonblocking|all] ...
//
// Each rank trains a ViT on synthetic images (forward, backward, reducer;
// the optimizer is left out: overlap does not change it). Every MPI progress
// mode with overlap_comm off (everything all-reduced after backward, as
// DeepSpeed does without ZeRO-2) and on is measured round-robin, one step
// each per round, in the same run, so drift hits all alike. Reported per
// configuration, the median over steps averaged over ranks: step time,
// backward time, the engine's busy time on gradients (comm), the part of it
// the step waited for after backward (exposed), and exposed / comm.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "parallel/bootstrap.h"
#include "parallel/grad_reducer.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu_backend.h"
#include "runtime/vit_model.h"

using namespace vitscale;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Per-step samples of one configuration; medians resist the descheduling
// spikes of a shared machine better than means.
struct Samples {
  std::vector<double> step, backward, comm, exposed;
  void add(double s, double b, const CommTiming& t) {
    step.push_back(s);
    backward.push_back(b);
    comm.push_back(t.reduce_s);
    exposed.push_back(t.exposed_s);
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  }
};

// Deterministic pseudo-random pixels; labels cycle over the classes.
void fill_batch(std::vector<std::uint8_t>& images, std::vector<float>& targets, int batch, int classes, int seed) {
  std::uint32_t x = 2463534242u + static_cast<std::uint32_t>(seed);
  for (auto& p : images) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p = static_cast<std::uint8_t>(x);
  }
  std::fill(targets.begin(), targets.end(), 0.f);
  for (int i = 0; i < batch; ++i) targets[static_cast<std::size_t>(i * classes + (i + seed) % classes)] = 1.f;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Distributed dist(&argc, &argv, /*force_mpi=*/true);
    ViTConfig cfg;
    cfg.image_size = 32;
    cfg.channels = 3;
    cfg.patch_size = 4;
    cfg.dim = 192;
    cfg.depth = 6;
    cfg.heads = 3;
    cfg.mlp_dim = 768;
    cfg.num_classes = 10;
    int micro_batch = 8, steps = 9, warmup = 1, threads = 0;
    double bucket_mib = 4.0;
    std::string progress = "all";
    CLI::App app("vit_overlap_bench: exposed vs total gradient communication, overlap_comm off and on");
    app.add_option("--dim", cfg.dim, "embedding width");
    app.add_option("--depth", cfg.depth, "blocks");
    app.add_option("--heads", cfg.heads, "attention heads");
    app.add_option("--mlp-dim", cfg.mlp_dim, "MLP hidden width");
    app.add_option("--image-size", cfg.image_size, "image side");
    app.add_option("--micro-batch", micro_batch, "images per rank per step");
    app.add_option("--steps", steps, "measured steps per configuration");
    app.add_option("--warmup", warmup, "unmeasured steps first");
    app.add_option("--bucket-mib", bucket_mib, "reduce_bucket_size in MiB");
    app.add_option("--threads", threads, "OpenMP threads per rank (0: cores / local ranks)");
    app.add_option("--progress", progress, "MPI progress: thread, polling, nonblocking or all")
        ->check(CLI::IsMember({"thread", "polling", "nonblocking", "all"}));
    int poll_us = CommOptions{}.mpi_poll_us;
    app.add_option("--poll-us", poll_us, "polling thread's test interval in microseconds");
    CLI11_PARSE(app, argc, argv);
    cfg.validate();

    CpuBackend backend(threads > 0 ? threads : dist.cpu_threads());
    ViTModel model(cfg, backend, ModelShape{micro_batch, 0}, ImageNorm{});
    model.init_parameters(1);
    std::vector<std::uint8_t> images(static_cast<std::size_t>(micro_batch) * 3 *
                                     static_cast<std::size_t>(cfg.image_size * cfg.image_size));
    std::vector<float> targets(static_cast<std::size_t>(micro_batch * cfg.num_classes));
    const int rank = dist.rank(), world = dist.world_size();
    if (rank == 0) {
      std::printf(
          "# vit_overlap_bench: %s, %lld parameters (%.1f MB of f32 gradients), micro batch %d per rank, "
          "%d ranks, %s, reduce_bucket_size %.1f MiB\n",
          cfg.describe().c_str(), static_cast<long long>(model.table().total_numel()),
          static_cast<double>(model.table().total_numel()) * 4e-6, micro_batch, world, backend.name().c_str(),
          bucket_mib);
      std::printf(
          "| MPI progress | overlap_comm | buckets | step ms | backward ms | comm ms | exposed ms | "
          "exposed / comm | overlap |\n|---|---|---|---|---|---|---|---|---|\n");
    }

    // Every configuration (progress mode × overlap off/on) gets one step per
    // round, round after round: drift on a shared machine hits all alike.
    struct Config {
      MpiProgress mode;
      bool overlap;
      std::unique_ptr<MpiCommunicator> comm;
      std::unique_ptr<GradReducer> reducer;
      Samples samples;
    };
    std::vector<Config> configs;
    const auto bucket_bytes = static_cast<std::size_t>(bucket_mib * 1024 * 1024);
    for (MpiProgress p : {MpiProgress::comm_thread, MpiProgress::polling_thread, MpiProgress::nonblocking}) {
      if (progress != "all" && progress != mpi_progress_name(p)) continue;
      CommOptions co;
      co.mpi_progress = p;
      co.mpi_poll_us = poll_us;
      for (bool overlap : {false, true}) {
        Config c{p, overlap, std::make_unique<MpiCommunicator>(co), nullptr, {}};
        c.reducer = std::make_unique<GradReducer>(*c.comm, model.table(), model.grads(),
                                                  ReducerOptions{bucket_bytes, 0, overlap});
        configs.push_back(std::move(c));
      }
    }
    for (int s = 0; s < warmup + steps; ++s) {
      for (Config& c : configs) {
        fill_batch(images, targets, micro_batch, cfg.num_classes, s * world + rank);
        c.comm->barrier().wait();  // start together: rank skew is not what we measure
        const auto t0 = Clock::now();
        model.zero_grads();
        c.reducer->begin_step(true);
        model.upload_batch(images.data(), targets.data(), micro_batch);
        model.forward(1.f / static_cast<float>(micro_batch * world));
        const auto tb = Clock::now();
        model.backward(c.reducer.get());
        const double backward = since(tb);
        const CommTiming t = c.reducer->finish();
        const double step = since(t0);
        if (s >= warmup) c.samples.add(step, backward, t);
      }
    }
    for (Config& c : configs) {
      const Samples& t = c.samples;
      // Medians over steps on each rank, then the mean over ranks.
      std::vector<double> v = {Samples::median(t.step), Samples::median(t.backward), Samples::median(t.comm),
                               Samples::median(t.exposed)};
      c.comm->all_reduce_host(v, HostReduce::sum);
      for (double& x : v) x /= world;
      if (rank == 0)
        std::printf("| %s | %s | %zu | %.1f | %.1f | %.2f | %.2f | %.1f%% | %.1f%% |\n", mpi_progress_name(c.mode),
                    c.overlap ? "on" : "off", c.reducer->plan().buckets.size(), v[0] * 1e3, v[1] * 1e3, v[2] * 1e3,
                    v[3] * 1e3, v[2] > 0 ? 100.0 * v[3] / v[2] : 0.0,
                    v[2] > 0 ? 100.0 * std::max(0.0, 1.0 - v[3] / v[2]) : 0.0);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_overlap_bench: %s\n", e.what());
    return 1;
  }
}
