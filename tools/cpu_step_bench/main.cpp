// vit_cpu_step_bench — one full training step (upload, forward, backward,
// clipped AdamW) of the same ViT, batch and thread count in vitscale's CPU
// backend and in LibTorch, side by side in one process; prints images/s of
// each and the ratio vitscale / LibTorch (the bar: ≥ 1).
//
// Steps alternate between the two (vitscale first on even steps, LibTorch
// first on odd ones) so that load from other processes and frequency drift
// fall on both alike; the figure is the median of the timed steps.
// --profile-ops adds a per-op breakdown of each side's step. --torch-threads
// gives LibTorch its own thread count (its best is often not every core), so
// one run can set vitscale against LibTorch at LibTorch's best. The SGEMM
// ceiling (sgemm_ceiling.h) is measured in the same run, before the steps, and
// vitscale's step is reported as model FLOP/s (vit_flops.h) and its fraction.
#include <CLI/CLI.hpp>

#if __has_include(<cblas.h>)
#include <cblas.h>
#endif

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/vit_flops.h"
#include "runtime/vit_model.h"
#include "tools/bench_common/sgemm_ceiling.h"
#include "tools/cpu_step_bench/timed_backend.h"
#include "tools/torch_ref/torch_vit.h"

namespace {

using namespace vitscale;
using Clock = std::chrono::steady_clock;

struct Options {
  ViTConfig config;  // defaults: the bar configuration (Fashion-MNIST ViT)
  int batch = 128;
  int threads = 0;          // 0: every core
  int torch_threads = 0;    // LibTorch's (intra-op and OpenBLAS); 0: the same as threads
  int ceiling_gemm = 2048;  // side of the SGEMM ceiling; 0: not measured
  int warmup = 3;
  int steps = 10;
  bool profile_ops = false;
  std::uint64_t seed = 1;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <class F>
double seconds_of(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Wall and CPU time of one step. On a shared machine the wall time includes
// waiting for a core; the CPU time does not (it does include OpenMP's
// spin-waiting, alike on both sides: one OpenMP runtime serves both).
struct StepTime {
  double wall = 0, cpu = 0;
};
template <class F>
StepTime time_step(F&& f) {
  const double c0 = bench::process_cpu_seconds();
  const double wall = seconds_of(f);
  return {wall, bench::process_cpu_seconds() - c0};
}

int run(const Options& o) {
  const ViTConfig& cfg = o.config;
  cfg.validate();
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int torch_threads = o.torch_threads > 0 ? o.torch_threads : threads;
  const int B = o.batch;

  // The compute ceiling first, on vitscale's thread count, before any step
  // has started OpenMP's or OpenBLAS's pools.
  const bench::SgemmCeiling sgemm =
      o.ceiling_gemm > 0 ? bench::sgemm_ceiling(o.ceiling_gemm, threads, 10) : bench::SgemmCeiling{};
  const double ceiling = sgemm.best();

  // vitscale's OpenMP team has `threads` (each of its GEMM blocks runs
  // OpenBLAS single-threaded); LibTorch's intra-op pool (OpenMP here) and
  // OpenBLAS (LibTorch's GEMMs) have `torch_threads`. Both sides share the
  // process's OpenMP setting, so each step sets its own first.
  auto cpu = make_cpu_backend(threads);
  const auto use_vitscale_threads = [&] { omp_set_num_threads(threads); };
  const auto use_torch_threads = [&] {
    torch_ref::set_torch_threads(torch_threads);
#if defined(OPENBLAS_VERSION)
    openblas_set_num_threads(torch_threads);
#endif
  };
  std::unique_ptr<bench::TimedBackend> timed;
  if (o.profile_ops) timed = std::make_unique<bench::TimedBackend>(*cpu);
  Backend& backend = timed ? static_cast<Backend&>(*timed) : *cpu;

  ImageNorm norm;
  norm.channels = cfg.channels;
  for (int c = 0; c < cfg.channels; ++c) norm.mean[c] = 0.5f, norm.std[c] = 0.25f;
  ViTModel model(cfg, backend, ModelShape{B, cfg.image_size}, norm);
  AdamWOptimizer optimizer(backend, model.table());
  model.init_parameters(o.seed);
  torch_ref::TorchViT ref(cfg, norm);
  {
    std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
    model.read_params(flat);
    ref.load_flat(flat);
  }

  // One random batch, reused: the step's cost does not depend on the pixels.
  std::mt19937_64 rng(o.seed);
  std::vector<std::uint8_t> images(static_cast<std::size_t>(B) * cfg.channels * cfg.image_size * cfg.image_size);
  for (auto& p : images) p = static_cast<std::uint8_t>(rng() & 0xff);
  std::vector<float> targets(static_cast<std::size_t>(B) * cfg.num_classes, 0.f);
  for (int i = 0; i < B; ++i) targets[static_cast<std::size_t>(i * cfg.num_classes) + rng() % cfg.num_classes] = 1.f;

  AdamWHyper hyper;  // lr 1e-3, betas (0.9, 0.999), wd 0.05
  hyper.max_grad_norm = 1.f;
  int vs_steps = 0, torch_steps = 0;
  float vs_loss = 0, torch_loss = 0;
  const auto vitscale_step = [&] {
    use_vitscale_threads();
    model.zero_grads();
    model.upload_batch(images.data(), targets.data(), B);
    model.forward(1.f / static_cast<float>(B));
    model.backward();
    hyper.step = ++vs_steps;
    optimizer.step(model.params(), model.grads(), hyper);
    model.sync_compute_params();
    const std::vector<float> losses = model.read_losses();
    vs_loss = std::accumulate(losses.begin(), losses.end(), 0.f) / static_cast<float>(B);
  };
  const auto torch_step = [&] {
    use_torch_threads();
    AdamWHyper h = hyper;
    h.step = ++torch_steps;
    torch_loss = ref.train_step(images, targets, B, h);
  };

  use_vitscale_threads();  // LibTorch's first op set OpenMP to its own default; the backend's name reads it
  std::printf("vit_cpu_step_bench: %s, batch %d, %d threads (LibTorch: %d)\n", cfg.describe().c_str(), B, threads,
              torch_threads);
  std::printf("  vitscale: %s; baseline: %s\n", cpu->name().c_str(), torch_ref::torch_description().c_str());
  std::printf("  vitscale's CPU GEMM: %s; attention: %s\n", cpu::gemm_isa_name(cpu::gemm_isa()),
              cpu::attention_isa_name(cpu::attention_isa()));
  if (ceiling > 0)
    std::printf("  SGEMM ceiling: %.1f GFLOP/s (%d^3, %d threads, fastest of 10; OpenBLAS %.1f, vitscale %.1f)\n",
                ceiling / 1e9, o.ceiling_gemm, threads, sgemm.openblas_flops / 1e9, sgemm.vitscale_flops / 1e9);
  std::printf("%s", model.memory_plan().format().c_str());
  for (int i = 0; i < o.warmup; ++i) {
    vitscale_step();
    torch_step();
  }
  std::vector<double> vs_times, torch_times, vs_cpu, torch_cpu;
  const auto time_vitscale = [&] {
    const StepTime t = time_step(vitscale_step);
    vs_times.push_back(t.wall);
    vs_cpu.push_back(t.cpu);
  };
  const auto time_torch = [&] {
    const StepTime t = time_step(torch_step);
    torch_times.push_back(t.wall);
    torch_cpu.push_back(t.cpu);
  };
  for (int i = 0; i < o.steps; ++i) {
    if (i % 2 == 0) {
      time_vitscale();
      time_torch();
    } else {
      time_torch();
      time_vitscale();
    }
  }
  // Same weights, batch and step count: the losses must agree (a cheap guard
  // against benchmarking two different computations).
  std::printf("  loss after %d steps: vitscale %.6f, LibTorch %.6f\n", vs_steps, vs_loss, torch_loss);

  const double vs = median(vs_times), tt = median(torch_times);
  const auto minmax = [](const std::vector<double>& v) { return std::minmax_element(v.begin(), v.end()); };
  const auto [vs_min, vs_max] = minmax(vs_times);
  const auto [tt_min, tt_max] = minmax(torch_times);
  std::printf("  %-10s median %8.2f ms/step (min %.2f, max %.2f)  %9.1f images/s  cpu %.2f s/step\n", "vitscale",
              1e3 * vs, 1e3 * *vs_min, 1e3 * *vs_max, B / vs, median(vs_cpu));
  std::printf("  %-10s median %8.2f ms/step (min %.2f, max %.2f)  %9.1f images/s  cpu %.2f s/step\n", "LibTorch",
              1e3 * tt, 1e3 * *tt_min, 1e3 * *tt_max, B / tt, median(torch_cpu));
  std::printf("  ratio vitscale / LibTorch (images/s): %.3f  (%d warm-up + %d timed steps each; cpu-time ratio %.3f)\n",
              tt / vs, o.warmup, o.steps, median(torch_cpu) / median(vs_cpu));
  // Model FLOPs (GEMMs and attention products, forward + backward; nothing
  // recomputed counts) per second of vitscale's median step.
  const double step_flops = vit_flops(cfg).training() * B;
  std::printf("  vitscale step: %.1f GFLOP/s of model FLOPs (%.2f GFLOP/step)", step_flops / vs / 1e9,
              step_flops / 1e9);
  if (ceiling > 0)
    std::printf(" = %.1f%% of the SGEMM ceiling (%s's; %.1f%% of OpenBLAS's)", 100.0 * step_flops / vs / ceiling,
                sgemm.best_name(), 100.0 * step_flops / vs / sgemm.openblas_flops);
  std::printf("\n");

  if (timed) {
    const int profile_steps = std::max(1, o.steps / 2);
    timed->reset();
    timed->set_enabled(true);
    double wall = 0;
    for (int i = 0; i < profile_steps; ++i) wall += seconds_of(vitscale_step);
    timed->set_enabled(false);
    std::printf("\nvitscale per-op breakdown (%d steps, %.2f ms/step wall):\n%s", profile_steps,
                1e3 * wall / profile_steps, timed->report(profile_steps).c_str());
    AdamWHyper h = hyper;
    h.step = torch_steps + 1;
    use_torch_threads();
    std::printf("\nLibTorch per-op breakdown (%d steps, wall, inclusive):\n%s", profile_steps,
                ref.profile_ops(images, targets, B, h, profile_steps).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  ViTConfig& c = o.config;
  CLI::App app{"vitscale vs LibTorch: one ViT training step on the CPU, same model, batch and threads"};
  app.add_option("--dim", c.dim, "embedding dim D")->capture_default_str();
  app.add_option("--depth", c.depth, "number of blocks L")->capture_default_str();
  app.add_option("--heads", c.heads, "attention heads H")->capture_default_str();
  app.add_option("--mlp", c.mlp_dim, "MLP hidden dim F")->capture_default_str();
  app.add_option("--image", c.image_size, "image side I")->capture_default_str();
  app.add_option("--patch", c.patch_size, "patch side P")->capture_default_str();
  app.add_option("--channels", c.channels, "image channels C")->capture_default_str();
  app.add_option("--classes", c.num_classes, "classes K")->capture_default_str();
  bool mean_pool = false;
  app.add_flag("--mean-pool", mean_pool, "mean pooling + fc_norm instead of the class token");
  app.add_option("--batch", o.batch, "images per step")->capture_default_str();
  app.add_option("--threads", o.threads, "threads for both (0: every core)")->capture_default_str();
  app.add_option("--torch-threads", o.torch_threads, "LibTorch's threads (0: the same as --threads)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ceiling-gemm", o.ceiling_gemm, "side of the SGEMM ceiling measured first (0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", o.warmup, "untimed steps of each first")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps of each (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--profile-ops", o.profile_ops, "also time every backend op of vitscale's step");
  app.add_option("--seed", o.seed, "weights and batch seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  c.pooling = mean_pool ? Pooling::mean : Pooling::cls_token;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_cpu_step_bench: %s\n", e.what());
    return 1;
  }
}
