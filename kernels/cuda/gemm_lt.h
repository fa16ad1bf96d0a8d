// gemm_lt.h — the three GEMMs of a Linear layer through cuBLASLt.
//
// Row-major (PyTorch) tensors, nn.Linear's (out, in) weight layout:
//   forward   out (M, N)  = in (M, K) · W (N, K)ᵀ (+ bias (N), fused in the epilogue)
//   d_input   d_in (M, K) = d_out (M, N) · W (N, K)
//   d_weight  dW (N, K) += d_out (M, N)ᵀ · in (M, K)       (f32 output, accumulates)
// gemm_lt.cu explains the mapping onto cuBLAS's column-major convention.
//
// One LtGemm per backend: it owns the cuBLASLt handle and a cache of matmul
// descriptors, layouts and the heuristic's algorithm keyed by the problem
// (sizes, dtypes, pointer alignment), so a step after the first spends no host
// time choosing algorithms and nothing is allocated (the workspace is given
// once). Everything it enqueues is graph-capture safe.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <type_traits>

#include "runtime/tensor.h"

namespace vitscale::cuda {

class LtGemm {
 public:
  // allow_tf32: f32 GEMMs may use TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32).
  LtGemm(bool allow_tf32, void* workspace, std::size_t workspace_bytes);
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  ~LtGemm();

  // out (M, N) = in (M, K) · w (N, K)ᵀ + bias (N); out, in, w, bias of `dt`
  // (bias may be null). Returns false when no cuBLASLt algorithm takes the bias
  // epilogue: then the GEMM ran without bias and the caller must add it.
  bool linear(cudaStream_t stream, DType dt, void* out, const void* in, const void* w, const void* bias, int M, int N,
              int K);
  // d_in (M, K) = d_out (M, N) · w (N, K).
  void linear_dinput(cudaStream_t stream, DType dt, void* d_in, const void* d_out, const void* w, int M, int N, int K);
  // d_w (N, K) f32 += d_out (M, N)ᵀ · in (M, K); d_out and in of `dt`.
  void linear_dweight(cudaStream_t stream, DType dt, float* d_w, const void* d_out, const void* in, int M, int N,
                      int K);

  bool allow_tf32() const { return allow_tf32_; }

 private:
  // One column-major problem: D (m, n) = op(A) · op(B) (+ beta·D) (+ bias).
  struct Problem {
    bool trans_a, trans_b;
    std::int64_t m, n, k, lda, ldb, ldd;
    cudaDataType_t ab_type, d_type;
    bool bias;
    float beta;
    const void* a;
    const void* b;
    void* d;
    const void* bias_ptr;
    const char* op;  // for error messages
  };
  struct Key {
    bool trans_a, trans_b;
    std::int64_t m, n, k, lda, ldb, ldd;
    int ab_type, d_type;
    bool bias, accumulate;
    int align_a, align_b, align_d, align_bias;
    auto tie() const {
      return std::tie(trans_a, trans_b, m, n, k, lda, ldb, ldd, ab_type, d_type, bias, accumulate, align_a, align_b,
                      align_d, align_bias);
    }
    bool operator<(const Key& o) const { return tie() < o.tie(); }
  };
  struct Plan;  // descriptors + algorithm (gemm_lt.cu)

  // Returns false when no algorithm was found (only tolerated for the bias epilogue).
  bool run(cudaStream_t stream, const Problem& p, bool may_fail);
  Plan& plan_for(const Key& key, const Problem& p);

  bool allow_tf32_;
  void* workspace_;
  std::size_t workspace_bytes_;
  std::unique_ptr<std::remove_pointer_t<cublasLtHandle_t>, cublasStatus_t (*)(cublasLtHandle_t)> handle_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace vitscale::cuda
