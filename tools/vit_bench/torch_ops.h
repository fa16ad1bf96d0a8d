// torch_ops.h — LibTorch's versions of the benchmarked ops (torch-free header).
// Each returns the median time in microseconds, or a negative value when
// LibTorch has no CUDA (or the op is not in this LibTorch). Built only with
// VITSCALE_HAVE_TORCH; timed with CUDA events on LibTorch's (default) stream.
#pragma once

#include <string>

namespace vitscale::bench {

struct TorchTiming {
  double fwd_us = -1, bwd_us = -1;  // bwd = (fwd + bwd) − fwd, for autograd ops
};

bool torch_cuda_available();
std::string torch_version();
TorchTiming torch_layernorm(long long R, long long D, bool bf16, int warmup, int reps);
TorchTiming torch_sdpa(long long B, long long T, long long H, long long hd, bool bf16, int warmup, int reps);
TorchTiming torch_linear_gelu(long long M, long long N, long long K, bool bf16, int warmup, int reps);
TorchTiming torch_cross_entropy(long long B, long long K, bool bf16, int warmup, int reps);
double torch_fused_adamw(long long n, int warmup, int reps);

}  // namespace vitscale::bench
