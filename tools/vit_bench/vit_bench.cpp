// vit_bench — kernel microbenchmarks on every machine: the CUDA kernels
// (cuda_bench.cpp) when built with CUDA and a GPU is present, else the CPU
// backend's ops (cpu_bench.cpp); --device picks one. Either way a table of
// time, GB/s or FLOP/s and the fraction of a ceiling measured in the same run.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "tools/vit_bench/benches.h"
#ifdef VITSCALE_BENCH_CUDA
#include "runtime/cuda_backend.h"
#endif

int main(int argc, char** argv) {
  using vitscale::bench::BenchOptions;
  CLI::App app{
      "vit_bench: kernel benchmarks (CUDA kernels or CPU backend ops) against ceilings measured in the same run"};
  BenchOptions o;
  std::string device = "auto";
  app.add_option("--device", device, "cpu, cuda, cuda:N, or auto (cuda when a GPU is present, else cpu)")
      ->capture_default_str();
  app.add_option("--out", o.out_dir, "Directory for results.csv and results.md");
  app.add_option("--batch", o.batch, "Images per microbenchmark (0: 256 on CUDA, base16 uses batch/4; 128 on the CPU)")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed runs before timing")->capture_default_str();
  app.add_option("--reps", o.reps, "Timed runs (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-torch", o.no_torch, "Skip the LibTorch side even when it is available");
  app.add_option("--models", o.models,
                 "CUDA: comma list of tiny, small, base (T=65, patch 4 on 32×32) and base16 (T=197)")
      ->capture_default_str();
  app.add_option("--step-batch", o.step_batch, "CUDA: batch of the whole-step benchmark (ViT-S/4, bf16)")
      ->capture_default_str();
  app.add_option("--steps", o.steps, "CUDA: timed steps of the whole-step benchmark")->capture_default_str();
  app.add_flag("--no-step", o.no_step, "CUDA: skip the whole-step benchmark");
  app.add_option("--threads", o.threads, "CPU: threads for the ops and the ceilings (0: every core)")
      ->capture_default_str();
  app.add_option("--dim", o.dim, "CPU: embedding dim D (0: the CPU bench configuration's, 128)")->capture_default_str();
  app.add_option("--heads", o.heads, "CPU: attention heads H (0: the CPU bench configuration's, 4)")->capture_default_str();
  app.add_option("--mlp", o.mlp, "CPU: MLP hidden dim F (0: the CPU bench configuration's, 512)")->capture_default_str();
  app.add_option("--tokens", o.tokens, "CPU: tokens T (0: the CPU bench configuration's, 50: 7×7 patches + class token)")
      ->capture_default_str();
  app.add_option("--ceiling-gemm", o.ceiling_gemm, "CPU: side of the square SGEMM of the compute ceiling")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--ceiling-copy-mib", o.ceiling_copy_mib, "CPU: MiB copied by the bandwidth ceiling")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  bool use_cuda = false;
#ifdef VITSCALE_BENCH_CUDA
  const bool have_gpu = vitscale::cuda_device_count() > 0;
#else
  const bool have_gpu = false;
#endif
  if (device == "auto") {
    use_cuda = have_gpu;
  } else if (device == "cpu") {
    use_cuda = false;
  } else if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (device.size() > 5) {
      try {
        o.cuda_device = std::stoi(device.substr(5));
      } catch (const std::exception&) {
        std::cerr << "vit_bench: --device " << device << ": expected cuda:N\n";
        return 2;
      }
    }
#ifndef VITSCALE_BENCH_CUDA
    std::cerr << "vit_bench: --device " << device << ": this build has no CUDA (use --device cpu)\n";
    return 2;
#endif
    use_cuda = true;
  } else {
    std::cerr << "vit_bench: --device " << device << ": expected cpu, cuda, cuda:N or auto\n";
    return 2;
  }
#ifdef VITSCALE_BENCH_CUDA
  if (use_cuda) return vitscale::bench::run_cuda_bench(o);
#endif
  return vitscale::bench::run_cpu_bench(o);
}
