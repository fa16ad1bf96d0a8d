// sgemm_ceiling.h — the machine's GEMM rate, the compute ceiling that the CPU
// benchmarks (vit_bench --device cpu, vit_cpu_step_bench) set their figures
// against in the same run: a square n³ SGEMM on `threads` threads, measured
// two ways, and the faster is the ceiling:
//   - through OpenBLAS on its own threads (what a user of the BLAS gets);
//   - through vitscale's kernel (kernels/cpu/gemm.h), a share of rows per OpenMP thread.
// Where OpenBLAS runs narrower kernels than the core has (its Haswell kernels
// on an AVX-512 EPYC), its rate is half the machine's; a step set against it
// would read over 100 %. Header-only: both tools include it. Also the scope in which
// OpenBLAS runs on a given number of its own threads, which both tools need
// around every BLAS call of theirs.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.h"

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

// The fastest of `reps` timed calls of `gemm` after one warm-up, as FLOP/s
// (2·n³ per call): the rate the machine can reach (on a shared VM the median
// moves with the neighbours' load), so a fraction of it errs low, never high.
template <class Gemm>
double fastest_gemm_flops(int n, int reps, Gemm gemm) {
  std::vector<double> seconds;
  for (int r = 0; r <= std::max(reps, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    gemm();
    if (r > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * static_cast<double>(n) / *std::min_element(seconds.begin(), seconds.end());
}

struct SgemmCeiling {
  double openblas_flops = 0;  // cblas_sgemm, OpenBLAS's threads
  double vitscale_flops = 0;  // cpu::linear_forward, OpenMP's threads
  double best() const { return std::max(openblas_flops, vitscale_flops); }
  const char* best_name() const { return vitscale_flops > openblas_flops ? "vitscale" : "OpenBLAS"; }
};

inline SgemmCeiling sgemm_ceiling(int n, int threads, int reps) {
  // a, b, y (n, n) row-major; y = a · bᵀ, the layout of a linear layer's forward.
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), y(a.size());
  SgemmCeiling c;
  {
    const OpenBlasThreadsScope blas(threads, /*settle=*/true);
    c.openblas_flops = fastest_gemm_flops(n, reps, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, y.data(), n);
    });
  }
  // vitscale's kernel: one contiguous share of the rows per thread, as a BLAS
  // splits a large square GEMM (the linear layers' 6-48 fixed blocks suit
  // their thin shapes; at n³ each block would repack all of B).
  const cpu::GemmIsa isa = cpu::gemm_isa();
  c.vitscale_flops = fastest_gemm_flops(n, reps, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const std::int64_t row0 = std::int64_t{n} * t / threads, rows = std::int64_t{n} * (t + 1) / threads - row0;
      cpu::gemm(isa, cpu::dense_gemm_args(y.data() + row0 * n, a.data() + row0 * n, false, b.data(), true, rows, n, n));
    }
  });
  return c;
}

}  // namespace vitscale::bench
