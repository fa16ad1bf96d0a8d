// sgemm_ceiling.h — the machine's GEMM rate, the compute ceiling that the CPU
// benchmarks (vit_bench --device cpu, vit_cpu_step_bench) set their figures
// against in the same run: a square n³ SGEMM through the same OpenBLAS the
// CPU backend calls, on `threads` of OpenBLAS's own threads. Header-only:
// both tools include it; neither library needs it. Also the scope in which
// OpenBLAS runs on a given number of its own threads, which both tools need
// around every BLAS call of theirs.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace vitscale::bench {

// OpenBLAS on `threads` of its own threads for this scope, then its previous
// setting again. With `settle`, the scope's end also waits until OpenBLAS's
// pool has stopped spinning (it keeps spinning ~0.1 s after a call), so that
// whatever is timed next has the cores.
class OpenBlasThreadsScope {
 public:
  explicit OpenBlasThreadsScope(int threads, bool settle) : previous_(openblas_get_num_threads()), settle_(settle) {
    openblas_set_num_threads(threads);
  }
  ~OpenBlasThreadsScope() {
    openblas_set_num_threads(previous_);
    if (settle_) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  OpenBlasThreadsScope(const OpenBlasThreadsScope&) = delete;
  OpenBlasThreadsScope& operator=(const OpenBlasThreadsScope&) = delete;

 private:
  int previous_;
  bool settle_;
};

// FLOP/s (2·n³ per call) of the fastest of `reps` calls after one warm-up:
// the rate the machine can reach (on a shared VM the median moves with the
// neighbours' load), so a fraction of it errs low, never high.
inline double sgemm_ceiling_flops(int n, int threads, int reps) {
  // a, b, y (n, n) row-major; y = a · bᵀ, the layout of a linear layer's forward.
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), y(a.size());
  std::vector<double> seconds;
  {
    const OpenBlasThreadsScope blas(threads, /*settle=*/true);
    for (int r = 0; r <= std::max(reps, 1); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, y.data(), n);
      if (r > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  return 2.0 * n * n * static_cast<double>(n) / *std::min_element(seconds.begin(), seconds.end());
}

}  // namespace vitscale::bench
