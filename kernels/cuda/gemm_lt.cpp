// gemm_lt.cpp — Linear-layer GEMMs through cuBLASLt (see gemm_lt.h).
//
// Row-major ↔ column-major. cuBLAS reads matrices column-major; a row-major
// (R, C) buffer is, byte for byte, the column-major (C, R) matrix (its
// transpose) with leading dimension C. So every row-major product is computed
// as its transpose, with the operands' roles swapped:
//
//   forward   out (M,N) = in·Wᵀ    ⇔  outᶜ (N×M) = Wᶜᵀ · inᶜ
//             A = W buffer, stored K×N (ld K), op T → N×K;  B = in, stored K×M (ld K), op N
//             m = N, n = M, k = K;  D ld = N.  Bias (N) = one value per row of D,
//             which is what CUBLASLT_EPILOGUE_BIAS broadcasts.
//   d_input   d_in (M,K) = d_out·W ⇔  d_inᶜ (K×M) = Wᶜ · d_outᶜ
//             A = W, stored K×N (ld K), op N;  B = d_out, stored N×M (ld N), op N
//             m = K, n = M, k = N;  D ld = K.
//   d_weight  dW (N,K) += d_outᵀ·in ⇔ dWᶜ (K×N) += inᶜ · d_outᶜᵀ
//             A = in, stored K×M (ld K), op N;  B = d_out, stored N×M (ld N), op T
//             m = K, n = N, k = M;  D ld = K; beta = 1 (accumulate), D is f32
//             even when A and B are bf16 (cuBLASLt supports bf16·bf16 → f32).
//
// Why the bias epilogue but not GELU_AUX_BIAS: cuBLASLt's GELU epilogue is the
// tanh approximation, while the model (timm, nn.GELU()) and the CPU reference
// use the exact erf GELU; the erf GELU runs as a separate elementwise pass.
// Why the bias gradient is not the BGRADB epilogue: our d_bias accumulates (+=)
// across micro-batches and must be deterministic; the epilogue overwrites, so a
// small deterministic column-sum kernel (reduce.cu) does it instead.
#include "kernels/cuda/gemm_lt.h"

#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda {

namespace {

template <class T, auto Destroy> struct LtDeleter {
  void operator()(T p) const { Destroy(p); }
};
using DescPtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>,
                                LtDeleter<cublasLtMatmulDesc_t, &cublasLtMatmulDescDestroy>>;
using LayoutPtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>,
                                  LtDeleter<cublasLtMatrixLayout_t, &cublasLtMatrixLayoutDestroy>>;
using PrefPtr = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                                LtDeleter<cublasLtMatmulPreference_t, &cublasLtMatmulPreferenceDestroy>>;

int alignment_of(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (int al = 16; al > 1; al /= 2)
    if (a % static_cast<std::uintptr_t>(al) == 0) return al;
  return 1;
}

cudaDataType_t cuda_type(DType dt, const char* op) {
  switch (dt) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    default: throw std::invalid_argument(std::string(op) + ": GEMMs take f32 or bf16, got " + dtype_name(dt));
  }
}

std::string describe(const char* op, std::int64_t m, std::int64_t n, std::int64_t k) {
  return std::string(op) + " (cuBLASLt column-major " + dims({{"m", m}, {"n", n}, {"k", k}}) + ")";
}

}  // namespace

struct LtGemm::Plan {
  DescPtr desc;
  LayoutPtr a, b, d;
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
};

LtGemm::LtGemm(bool allow_tf32, void* workspace, std::size_t workspace_bytes)
    : allow_tf32_(allow_tf32), workspace_(workspace), workspace_bytes_(workspace_bytes), handle_(nullptr, nullptr) {
  cublasLtHandle_t h = nullptr;
  VS_CUBLAS_CHECK(cublasLtCreate(&h), std::string("cublasLtCreate"));
  handle_ = decltype(handle_)(h, &cublasLtDestroy);
}

LtGemm::~LtGemm() = default;

LtGemm::Plan& LtGemm::plan_for(const Key& key, const Problem& p) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  auto plan = std::make_unique<Plan>();
  const std::string where = describe(p.op, p.m, p.n, p.k);

  // fp32 data: exact fp32 unless TF32 was allowed; bf16 data: fp32 accumulation.
  const cublasComputeType_t compute =
      (p.ab_type == CUDA_R_32F && allow_tf32_) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasLtMatmulDesc_t desc = nullptr;
  VS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F), where);
  plan->desc.reset(desc);
  const cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  VS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), where);
  VS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), where);
  if (p.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    VS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), where);
    const cudaDataType_t bias_type = p.d_type;  // the bias is stored like the output
    VS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), where);
    VS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias_ptr, sizeof p.bias_ptr), where);
  }
  // Stored shapes (before op): op N → (rows, cols) = (m, k); op T → (k, m).
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  VS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, p.ab_type, p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p.lda),
                  where);
  plan->a.reset(la);
  VS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, p.ab_type, p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p.ldb),
                  where);
  plan->b.reset(lb);
  VS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, p.d_type, p.m, p.n, p.ldd), where);
  plan->d.reset(ld);

  cublasLtMatmulPreference_t pref_raw = nullptr;
  VS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref_raw), where);
  PrefPtr pref(pref_raw);
  const std::uint64_t ws = workspace_bytes_;
  VS_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), where);
  const std::uint32_t al_a = static_cast<std::uint32_t>(key.align_a), al_b = static_cast<std::uint32_t>(key.align_b),
                      al_d = static_cast<std::uint32_t>(key.align_d);
  VS_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a),
      where);
  VS_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b),
      where);
  VS_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d),
      where);
  VS_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d),
      where);

  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_.get(), desc, la, lb, ld, ld, pref_raw, 1, &result, &count);
  if (st == CUBLAS_STATUS_SUCCESS && count > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan->algo = result.algo;
    plan->found = true;
  }
  auto [pos, inserted] = plans_.emplace(key, std::move(plan));
  return *pos->second;
}

bool LtGemm::run(cudaStream_t stream, const Problem& p, bool may_fail) {
  if (p.m == 0 || p.n == 0) return true;
  if (p.k == 0) {  // an empty sum: nothing to accumulate; an empty forward is a caller bug
    if (p.beta != 0.f) return true;
    throw std::invalid_argument(describe(p.op, p.m, p.n, p.k) + ": inner dimension is 0");
  }
  const Key key{p.trans_a,  p.trans_b,    p.m,          p.n,  p.k,          p.lda,
                p.ldb,      p.ldd,        p.ab_type,    p.d_type,           p.bias,
                p.beta != 0.f, alignment_of(p.a), alignment_of(p.b), alignment_of(p.d),
                p.bias ? alignment_of(p.bias_ptr) : 0};
  Plan& plan = plan_for(key, p);
  if (!plan.found) {
    if (may_fail) return false;
    throw std::runtime_error("cuBLASLt found no algorithm for " + describe(p.op, p.m, p.n, p.k) + " (inputs " +
                             (p.ab_type == CUDA_R_16BF ? "bf16" : "f32") + ", output " +
                             (p.d_type == CUDA_R_16BF ? "bf16" : "f32") + ")");
  }
  if (p.bias)
    VS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias_ptr,
                                                   sizeof p.bias_ptr),
                    describe(p.op, p.m, p.n, p.k));
  // k == 0 is a valid (empty-sum) product; cuBLASLt handles it as D = beta·C.
  const float alpha = 1.f;
  VS_CUBLAS_CHECK(cublasLtMatmul(handle_.get(), plan.desc.get(), &alpha, p.a, plan.a.get(), p.b, plan.b.get(), &p.beta,
                                 p.d, plan.d.get(), p.d, plan.d.get(), &plan.algo, workspace_, workspace_bytes_, stream),
                  describe(p.op, p.m, p.n, p.k));
  return true;
}

bool LtGemm::linear(cudaStream_t stream, DType dt, void* out, const void* in, const void* w, const void* bias, int M,
                    int N, int K) {
  const cudaDataType_t t = cuda_type(dt, "linear");
  Problem p{true, false, N, M, K, K, K, N, t, t, bias != nullptr, 0.f, w, in, out, bias, "linear"};
  if (run(stream, p, /*may_fail=*/bias != nullptr)) return true;
  p.bias = false;  // no algorithm with the bias epilogue: plain GEMM, caller adds the bias
  p.bias_ptr = nullptr;
  run(stream, p, false);
  return false;
}

void LtGemm::linear_dinput(cudaStream_t stream, DType dt, void* d_in, const void* d_out, const void* w, int M, int N,
                           int K) {
  const cudaDataType_t t = cuda_type(dt, "linear_backward d_in");
  const Problem p{false, false, K, M, N, K, N, K, t, t, false, 0.f, w, d_out, d_in, nullptr, "linear_backward d_in"};
  run(stream, p, false);
}

void LtGemm::linear_dweight(cudaStream_t stream, DType dt, float* d_w, const void* d_out, const void* in, int M,
                            int N, int K) {
  const cudaDataType_t t = cuda_type(dt, "linear_backward d_weight");
  const Problem p{false, true, K, N, M, K, N, K, t, CUDA_R_32F, false, 1.f, in, d_out, d_w, nullptr,
                  "linear_backward d_weight"};
  run(stream, p, false);
}

}  // namespace vitscale::cuda
