#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"

namespace vitscale::cpu {
namespace {

// Below this many multiply-adds a GEMM is one BLAS call on one thread.
constexpr std::int64_t kParallelGemmWork = std::int64_t{1} << 18;
// Above it a GEMM is cut into kBaseBlocks blocks (6 = 2·3: 1, 2, 3 and 6 threads
// each get the same share), doubled while every block keeps at least
// kBlockWork multiply-adds, up to kMaxBlocks. Each extra block costs one more
// packing of the operand every block shares (the weight, in forward), so blocks
// stay large: the CPU step benchmark's GEMMs (~3·10⁸ multiply-adds) get 6.
constexpr std::int64_t kBaseBlocks = 6;
constexpr std::int64_t kBlockWork = std::int64_t{1} << 25;
constexpr std::int64_t kMaxBlocks = 48;
// The weight gradient's blocks are partial sums held in scratch: at most this
// many copies of d_weight.
constexpr std::int64_t kMaxWeightGradParts = 12;
// Elements of d_weight per work item when the partial sums are added up.
constexpr std::int64_t kPartialSumChunk = 1024;

// How many blocks a GEMM of `work` multiply-adds is cut into along a dimension
// of `extent`: a function of the shape only, never of the thread count.
std::int64_t block_count(std::int64_t work, std::int64_t extent, std::int64_t max_blocks) {
  if (work < kParallelGemmWork) return 1;
  std::int64_t blocks = kBaseBlocks;
  while (blocks * 2 <= max_blocks && work / (blocks * 2) >= kBlockWork) blocks *= 2;
  return std::max<std::int64_t>(1, std::min(blocks, extent));
}

// Row blocks of forward and the input gradient; reduction parts of the weight gradient.
std::int64_t row_blocks(std::int64_t M, std::int64_t K, std::int64_t N) {
  return block_count(M * K * N, M, kMaxBlocks);
}
std::int64_t weight_grad_parts(std::int64_t M, std::int64_t K, std::int64_t N) {
  return block_count(M * K * N, M, kMaxWeightGradParts);
}

// [begin, end) of block `b` of `count` over `n` items: contiguous, sizes differ by at most one.
struct Range {
  std::int64_t begin, end;
  std::int64_t size() const { return end - begin; }
};
Range block_range(std::int64_t n, std::int64_t b, std::int64_t count) { return {n * b / count, n * (b + 1) / count}; }

// OpenBLAS runs single-threaded for the duration of one of our GEMMs (each
// OpenMP thread calls it on its own blocks), then gets its previous setting
// back, so that other users of OpenBLAS in the process (LibTorch, side by side
// in the baseline benchmark) keep theirs.
class SingleThreadedBlas {
 public:
#if defined(OPENBLAS_VERSION)
  // Only when the GEMM is OpenBLAS's: vitscale's kernels never call it, and
  // openblas_set_num_threads on every linear call would be work for nothing.
  SingleThreadedBlas() : previous_(gemm_isa() == GemmIsa::kOpenBlas ? openblas_get_num_threads() : 1) {
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
  GemmArgs args = dense_gemm_args(out_rows, in_rows, false, weight, true, rows, N, K);
  args.bias = bias;
  gemm(gemm_isa(), args);
}

// d_in_rows (rows, K) = d_out_rows (rows, N) · weight (N, K), on the calling thread.
void gemm_input_grad_rows(float* d_in_rows, const float* d_out_rows, const float* weight, std::int64_t rows,
                          std::int64_t K, std::int64_t N) {
  gemm(gemm_isa(), dense_gemm_args(d_in_rows, d_out_rows, false, weight, false, rows, K, N));
}

// dst (N, K) = [dst +] d_out_rowsᵀ (N, rows) · in_rows (rows, K), on the calling thread;
// column_sums (N) += Σ_rows d_out_rows unless nullptr.
void gemm_weight_grad(float* dst, bool accumulate, const float* d_out_rows, const float* in_rows, std::int64_t rows,
                      std::int64_t K, std::int64_t N, double* column_sums) {
  GemmArgs args = dense_gemm_args(dst, d_out_rows, true, in_rows, false, N, K, rows);
  args.accumulate = accumulate;
  args.a_row_sums = column_sums;
  gemm(gemm_isa(), args);
}

// d_weight (elems) += Σ_p parts[p] (elems), per element in part order 0..parts-1,
// in double. An orphaned worksharing loop: call it from every thread of a
// parallel region (no barrier at its end).
void add_weight_parts(float* d_weight, const float* parts, std::int64_t part_count, std::int64_t elems) {
  const std::int64_t chunks = (elems + kPartialSumChunk - 1) / kPartialSumChunk;
#pragma omp for schedule(static) nowait
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kPartialSumChunk, width = std::min(kPartialSumChunk, elems - begin);
    double sum[kPartialSumChunk] = {};
    for (std::int64_t p = 0; p < part_count; ++p) {
      const float* part = parts + p * elems + begin;
      for (std::int64_t e = 0; e < width; ++e) sum[e] += part[e];
    }
    float* dw = d_weight + begin;
    for (std::int64_t e = 0; e < width; ++e) dw[e] = static_cast<float>(dw[e] + sum[e]);
  }
}

// d_bias (N) += Σ_p bias_parts[p] (N), in part order, in double.
void add_bias_parts(float* d_bias, const std::vector<double>& bias_parts, std::int64_t part_count, std::int64_t N) {
  for (std::int64_t j = 0; j < N; ++j) {
    double sum = 0;
    for (std::int64_t p = 0; p < part_count; ++p) sum += bias_parts[static_cast<std::size_t>(p * N + j)];
    d_bias[j] = static_cast<float>(d_bias[j] + sum);
  }
}

}  // namespace

std::size_t linear_backward_weight_scratch_floats(std::int64_t M, std::int64_t K, std::int64_t N) {
  const std::int64_t parts = weight_grad_parts(M, K, N);
  return parts > 1 ? static_cast<std::size_t>(parts * N * K) : 0;
}

namespace {

// out = in · weightᵀ + bias by row blocks; with gelu_out, gelu_out = gelu(out)
// too, each block's GELU taken as soon as its GEMM has written the rows, while
// they are in this core's cache (per element the bits of gelu_forward).
void forward_blocks(float* out, float* gelu_out, const float* in, const float* weight, const float* bias,
                    std::int64_t M, std::int64_t K, std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
  const std::int64_t blocks = row_blocks(M, K, N);
  // Blocks are independent (disjoint output rows), so any thread may take any
  // block: dynamic scheduling absorbs a core that another process holds.
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const Range rows = block_range(M, b, blocks);
    gemm_bias_rows(out + rows.begin * N, in + rows.begin * K, weight, bias, rows.size(), K, N);
    if (gelu_out) gelu_forward_on_this_thread(gelu_out + rows.begin * N, out + rows.begin * N, rows.size() * N);
  }
}

}  // namespace

void linear_forward(float* out, const float* in, const float* weight, const float* bias, std::int64_t M, std::int64_t K,
                    std::int64_t N) {
  forward_blocks(out, nullptr, in, weight, bias, M, K, N);
}

void linear_gelu_forward(float* pre, float* out, const float* in, const float* weight, const float* bias,
                         std::int64_t M, std::int64_t K, std::int64_t N) {
  forward_blocks(pre, out, in, weight, bias, M, K, N);
}

void linear_backward_input(float* d_in, const float* d_out, const float* weight, std::int64_t M, std::int64_t K,
                           std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
  const std::int64_t blocks = row_blocks(M, K, N);
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const Range rows = block_range(M, b, blocks);
    gemm_input_grad_rows(d_in + rows.begin * K, d_out + rows.begin * N, weight, rows.size(), K, N);
  }
}

void linear_backward(float* d_in, float* d_weight, float* d_bias, const float* d_out, const float* in,
                     const float* weight, float* scratch, std::int64_t M, std::int64_t K, std::int64_t N) {
  const SingleThreadedBlas single_threaded_blas;
  const std::int64_t parts = weight_grad_parts(M, K, N);
  // The bias gradient's column sums of d_out are the row sums of the GEMM's A
  // (d_outᵀ), read while A is packed: part p's in bias_parts[p], in double.
  std::vector<double> bias_parts(d_bias ? static_cast<std::size_t>(parts * N) : 0, 0.0);  // (parts, N)
  if (parts == 1) {
    if (d_in) linear_backward_input(d_in, d_out, weight, M, K, N);
    gemm_weight_grad(d_weight, true, d_out, in, M, K, N, d_bias ? bias_parts.data() : nullptr);
    if (d_bias) add_bias_parts(d_bias, bias_parts, parts, N);
    return;
  }
  // The reduction over M is cut into fixed row ranges. Cutting the output
  // instead would hand every block all M rows of `in` to pack again (the
  // operand is M x K, as large as the work is long); cut this way, each row is
  // packed once. Part p's partial sum goes to scratch[p], and each element of
  // d_weight then adds its parts in order 0..parts-1: one summation order for
  // any thread count. The input gradient of the same rows is computed just
  // before, by the same thread, so that the part's rows of d_out (1.1 MB at
  // fc1's 533 x 512) come from DRAM once and from cache the second time. A row
  // of d_in is a full reduction over N whatever the blocking, so its bits are
  // those of linear_backward_input.
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t p = 0; p < parts; ++p) {
      const Range rows = block_range(M, p, parts);
      if (d_in) gemm_input_grad_rows(d_in + rows.begin * K, d_out + rows.begin * N, weight, rows.size(), K, N);
      gemm_weight_grad(scratch + p * N * K, false, d_out + rows.begin * N, in + rows.begin * K, rows.size(), K, N,
                       d_bias ? bias_parts.data() + p * N : nullptr);
    }
    add_weight_parts(d_weight, scratch, parts, N * K);
#pragma omp single
    if (d_bias) add_bias_parts(d_bias, bias_parts, parts, N);
  }
}

std::size_t mlp_backward_scratch_floats(std::int64_t M, std::int64_t D, std::int64_t F) {
  return 2 * linear_backward_weight_scratch_floats(M, D, F);
}

void mlp_backward(const MlpBackwardArgs& a, float* scratch, std::int64_t M, std::int64_t D, std::int64_t F) {
  // fc2 is linear_backward's (M, K = F, N = D), fc1's (M, K = D, N = F): the
  // same multiply-adds, so the same row parts (weight_grad_parts).
  const std::int64_t parts = weight_grad_parts(M, F, D);
  if (parts == 1) {
    linear_backward(a.d_hidden, a.d_fc2_weight, a.d_fc2_bias, a.d_out, a.act, a.fc2_weight, scratch, M, F, D);
    gelu_backward(a.d_hidden, a.d_hidden, a.pre, M * F);
    linear_backward(a.d_in, a.d_fc1_weight, a.d_fc1_bias, a.d_hidden, a.in, a.fc1_weight, scratch, M, D, F);
    return;
  }
  const SingleThreadedBlas single_threaded_blas;
  const std::int64_t elems = D * F;
  // The weight gradients' partial sums, fc2's (parts, D, F) then fc1's (parts, F, D),
  // and the biases' in double, fc2's (parts, D) and fc1's (parts, F).
  float* fc2_parts = scratch;
  float* fc1_parts = scratch + parts * elems;
  std::vector<double> fc2_bias_parts(a.d_fc2_bias ? static_cast<std::size_t>(parts * D) : 0, 0.0);
  std::vector<double> fc1_bias_parts(a.d_fc1_bias ? static_cast<std::size_t>(parts * F) : 0, 0.0);
  // Part p's rows go through all three ops on one thread, each op with the
  // blocking it has alone (linear_backward's parts; GELU is per element), so
  // every output has the bits of the three separate calls. What changes is
  // where the part's d_hidden rows (533 x 512, 1.1 MB at the CPU bench's
  // shape) are between the ops: in this core's cache, instead of written to
  // DRAM by fc2's backward and read back by the GELU pass and by fc1's.
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t p = 0; p < parts; ++p) {
      const Range rows = block_range(M, p, parts);
      float* d_hidden = a.d_hidden + rows.begin * F;  // (rows, F)
      const float* d_out = a.d_out + rows.begin * D;  // (rows, D)
      gemm_input_grad_rows(d_hidden, d_out, a.fc2_weight, rows.size(), F, D);
      gemm_weight_grad(fc2_parts + p * elems, false, d_out, a.act + rows.begin * F, rows.size(), F, D,
                       a.d_fc2_bias ? fc2_bias_parts.data() + p * D : nullptr);
      gelu_backward_on_this_thread(d_hidden, d_hidden, a.pre + rows.begin * F, rows.size() * F);
      if (a.d_in) gemm_input_grad_rows(a.d_in + rows.begin * D, d_hidden, a.fc1_weight, rows.size(), D, F);
      gemm_weight_grad(fc1_parts + p * elems, false, d_hidden, a.in + rows.begin * D, rows.size(), D, F,
                       a.d_fc1_bias ? fc1_bias_parts.data() + p * F : nullptr);
    }
    add_weight_parts(a.d_fc2_weight, fc2_parts, parts, elems);
    add_weight_parts(a.d_fc1_weight, fc1_parts, parts, elems);
#pragma omp single
    {
      if (a.d_fc2_bias) add_bias_parts(a.d_fc2_bias, fc2_bias_parts, parts, D);
      if (a.d_fc1_bias) add_bias_parts(a.d_fc1_bias, fc1_bias_parts, parts, F);
    }
  }
}

}  // namespace vitscale::cpu
