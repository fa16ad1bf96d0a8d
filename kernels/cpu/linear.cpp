#include "kernels/cpu/linear.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace vitscale::cpu {
namespace {

// Below this many multiply-adds a GEMM is not worth waking the thread team.
constexpr std::int64_t kParallelGemmWork = std::int64_t{1} << 18;
// Columns one thread owns while summing a bias gradient (fits in registers).
constexpr std::int64_t kBiasColumns = 32;

// [begin, end) of `n` items for thread `id` of `count`: contiguous, static.
struct Range {
  std::int64_t begin, end;
};
Range thread_slice(std::int64_t n, int id, int count) { return {n * id / count, n * (id + 1) / count}; }

int to_int(std::int64_t v) { return static_cast<int>(v); }  // BLAS takes int sizes

// OpenBLAS runs single-threaded for the duration of one of our GEMMs (each
// OpenMP thread calls it on its own slice), then gets its previous setting
// back, so that other users of OpenBLAS in the process (LibTorch, side by side
// in the baseline benchmark) keep theirs.
class SingleThreadedBlas {
 public:
#if defined(OPENBLAS_VERSION)
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
#endif
};

// out_rows (rows, N) = bias + in_rows (rows, K) · weightᵀ, on the calling thread.
void gemm_bias_rows(float* out_rows, const float* in_rows, const float* weight, const float* bias, std::int64_t rows,
                    std::int64_t K, std::int64_t N) {
  if (bias) {
    for (std::int64_t r = 0; r < rows; ++r) std::copy(bias, bias + N, out_rows + r * N);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, to_int(rows), to_int(N), to_int(K), 1.f, in_rows, to_int(K),
              weight, to_int(K), bias ? 1.f : 0.f, out_rows, to_int(N));
}

}  // namespace

void linear_forward(float* out, const float* in, const float* weight, const float* bias, std::int64_t M, std::int64_t K,
                    std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
#pragma omp parallel if (M * N * K >= kParallelGemmWork)
  {
    const Range rows = thread_slice(M, omp_get_thread_num(), omp_get_num_threads());
    if (rows.end > rows.begin) {
      gemm_bias_rows(out + rows.begin * N, in + rows.begin * K, weight, bias, rows.end - rows.begin, K, N);
    }
  }
}

void linear_backward_input(float* d_in, const float* d_out, const float* weight, std::int64_t M, std::int64_t K,
                           std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
#pragma omp parallel if (M * N * K >= kParallelGemmWork)
  {
    const Range rows = thread_slice(M, omp_get_thread_num(), omp_get_num_threads());
    if (rows.end > rows.begin) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(rows.end - rows.begin), to_int(K), to_int(N), 1.f,
                  d_out + rows.begin * N, to_int(N), weight, to_int(K), 0.f, d_in + rows.begin * K, to_int(K));
    }
  }
}

void linear_backward_weight(float* d_weight, const float* d_out, const float* in, std::int64_t M, std::int64_t K,
                            std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
  // Split by rows of d_weight (output features): every element is still one
  // full reduction over M, so the split does not change the summation.
#pragma omp parallel if (M * N * K >= kParallelGemmWork)
  {
    const Range feats = thread_slice(N, omp_get_thread_num(), omp_get_num_threads());
    if (feats.end > feats.begin) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, to_int(feats.end - feats.begin), to_int(K), to_int(M), 1.f,
                  d_out + feats.begin, to_int(N), in, to_int(K), 1.f, d_weight + feats.begin * K, to_int(K));
    }
  }
}

void linear_backward_bias(float* d_bias, const float* d_out, std::int64_t M, std::int64_t N) {
  const std::int64_t blocks = (N + kBiasColumns - 1) / kBiasColumns;
#pragma omp parallel for schedule(static) if (M * N >= kParallelGemmWork / 8)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t c0 = blk * kBiasColumns;
    const std::int64_t width = std::min(kBiasColumns, N - c0);
    double acc[kBiasColumns] = {};
    for (std::int64_t r = 0; r < M; ++r) {
      const float* row = d_out + r * N + c0;
      for (std::int64_t c = 0; c < width; ++c) acc[c] += row[c];
    }
    for (std::int64_t c = 0; c < width; ++c) d_bias[c0 + c] = static_cast<float>(d_bias[c0 + c] + acc[c]);
  }
}

}  // namespace vitscale::cpu
