// benches.h — vit_bench's two benchmarks behind one command line: the CUDA
// kernels (cuda_bench.cpp, built with CUDA only) and the CPU backend's ops
// (cpu_bench.cpp, always built).
#pragma once

#include <string>

namespace vitscale::bench {

struct BenchOptions {
  std::string out_dir;  // results.csv and results.md ("" : stdout only)
  int warmup = 10, reps = 50;
  int batch = 0;  // images per microbenchmark (0: the device's default, 256 on CUDA, 128 on the CPU)
  bool no_torch = false;
  // CUDA only.
  int cuda_device = 0;
  std::string models = "tiny,small,base,base16";
  int step_batch = 256, steps = 20;
  bool no_step = false;
  // CPU only: the ViT step's shapes (0: ViTConfig's defaults, the CPU bench configuration D128 T50).
  int threads = 0;  // 0: every core
  int dim = 0, heads = 0, mlp = 0, tokens = 0;
  int ceiling_gemm = 2048;     // side of the square SGEMM ceiling
  int ceiling_copy_mib = 256;  // bytes copied by the bandwidth ceiling
};

// Both return the process exit code.
int run_cuda_bench(const BenchOptions& o);
int run_cpu_bench(const BenchOptions& o);

}  // namespace vitscale::bench
