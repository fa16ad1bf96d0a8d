// cuda_check.cpp — the error messages behind VS_CUDA_CHECK / VS_CUBLAS_CHECK.
#include "kernels/cuda/cuda_check.h"

#include <sstream>
#include <stdexcept>

namespace vitscale::cuda {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line, const std::string& context) {
  std::ostringstream s;
  s << "CUDA error in " << context << ": " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ") from "
    << expr << " at " << file << ':' << line;
  throw std::runtime_error(s.str());
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line,
                        const std::string& context) {
  std::ostringstream s;
  s << "cuBLASLt error in " << context << ": " << cublasLtGetStatusName(status) << " (" << cublasLtGetStatusString(status)
    << ") from " << expr << " at " << file << ':' << line;
  throw std::runtime_error(s.str());
}

std::string dims(std::initializer_list<std::pair<const char*, long long>> kv) {
  std::ostringstream s;
  bool first = true;
  for (const auto& [k, v] : kv) {
    s << (first ? "" : " ") << k << '=' << v;
    first = false;
  }
  return s.str();
}

}  // namespace vitscale::cuda
