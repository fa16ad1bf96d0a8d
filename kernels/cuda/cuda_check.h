// cuda_check.h — every CUDA runtime and cuBLASLt call is checked here.
//
// VS_CUDA_CHECK(call, context) throws std::runtime_error naming the call, the
// error, the file:line and `context` (the op and its shapes). `context` is an
// expression evaluated only on failure, so building a std::string there costs
// nothing on the hot path. VS_LAUNCH_CHECK(context) checks a kernel launch
// (configuration errors are reported at once; faults inside the kernel surface
// at the next synchronising call, which names itself).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace vitscale::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line,
                                   const std::string& context);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line,
                                     const std::string& context);

// "R=16640 D=384" style helper for contexts.
std::string dims(std::initializer_list<std::pair<const char*, long long>> kv);

}  // namespace vitscale::cuda

#define VS_CUDA_CHECK(expr, context)                                                          \
  do {                                                                                        \
    const cudaError_t vs_err_ = (expr);                                                       \
    if (vs_err_ != cudaSuccess)                                                               \
      ::vitscale::cuda::throw_cuda_error(vs_err_, #expr, __FILE__, __LINE__, (context));      \
  } while (0)

#define VS_CUBLAS_CHECK(expr, context)                                                        \
  do {                                                                                        \
    const cublasStatus_t vs_st_ = (expr);                                                     \
    if (vs_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::vitscale::cuda::throw_cublas_error(vs_st_, #expr, __FILE__, __LINE__, (context));     \
  } while (0)

#define VS_LAUNCH_CHECK(context) VS_CUDA_CHECK(cudaGetLastError(), context)

namespace vitscale::cuda {

// A status a caller deliberately ignores (cudaEventQuery's cudaErrorNotReady,
// a failed cudaEventElapsedTime) may also be recorded as the thread's last
// error, which the next VS_LAUNCH_CHECK (cudaGetLastError) would then report
// from an unrelated kernel (PyTorch clears it too). Clears the last error when,
// and only when, it is that status: a real error from elsewhere stays.
inline void forget_ignored_error(cudaError_t ignored) {
  if (ignored != cudaSuccess && cudaPeekAtLastError() == ignored) (void)cudaGetLastError();
}

// cudaEventQuery without the side effect: cudaSuccess (complete) or
// cudaErrorNotReady (pending; not left behind as the last error) or the error.
inline cudaError_t query_event(cudaEvent_t event) {
  const cudaError_t rc = cudaEventQuery(event);
  if (rc == cudaErrorNotReady) forget_ignored_error(rc);
  return rc;
}

}  // namespace vitscale::cuda
