// sgemm_ceiling.h — the machine's GEMM rate, the compute ceiling that the CPU
// benchmarks (vit_bench --device cpu, vit_cpu_step_bench) set their figures
// against in the same run: a square n³ SGEMM through the same OpenBLAS the
// CPU backend calls, on `threads` of OpenBLAS's own threads. Header-only:
// both tools include it; neither library needs it.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace vitscale::bench {

// FLOP/s (2·n³ per call) of the fastest of `reps` calls after one warm-up:
// the rate the machine can reach (on a shared VM the median moves with the
// neighbours' load), so a fraction of it errs low, never high.
inline double sgemm_ceiling_flops(int n, int threads, int reps) {
  // a, b, y (n, n) row-major; y = a · bᵀ, the layout of a linear layer's forward.
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), y(a.size());
  const int previous = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  std::vector<double> seconds;
  for (int r = 0; r <= std::max(reps, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, y.data(), n);
    if (r > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  openblas_set_num_threads(previous);
  // OpenBLAS's pool keeps spinning for ~0.1 s after a call: let it stop before anything else is timed.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return 2.0 * n * n * static_cast<double>(n) / *std::min_element(seconds.begin(), seconds.end());
}

}  // namespace vitscale::bench
