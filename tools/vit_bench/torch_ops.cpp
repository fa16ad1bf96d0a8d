// torch_ops.cpp — LibTorch baselines for vit_bench (see torch_ops.h). The only
// file of vit_bench that includes LibTorch. Inputs are random (randn), bf16
// runs use bf16 tensors (what autocast would feed these ops).
#include "tools/vit_bench/torch_ops.h"

#include <cuda_runtime_api.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <vector>

namespace vitscale::bench {
namespace {

// Median microseconds of f() timed with events on the legacy default stream
// (LibTorch's current stream unless a program changes it).
template <class F> double median_us(int warmup, int reps, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  torch::cuda::synchronize();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a, nullptr);
    f();
    cudaEventRecord(b, nullptr);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms * 1000.f);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

torch::TensorOptions opts(bool bf16) {
  return torch::TensorOptions().device(torch::kCUDA).dtype(bf16 ? torch::kBFloat16 : torch::kFloat32);
}

}  // namespace

bool torch_cuda_available() { return torch::cuda::is_available(); }
std::string torch_version() { return TORCH_VERSION; }

TorchTiming torch_layernorm(long long R, long long D, bool bf16, int warmup, int reps) {
  TorchTiming out;
  if (!torch_cuda_available()) return out;
  auto x = torch::randn({R, D}, opts(bf16)).requires_grad_(true);
  auto w = torch::ones({D}, opts(bf16)).requires_grad_(true), b = torch::zeros({D}, opts(bf16)).requires_grad_(true);
  auto dy = torch::randn({R, D}, opts(bf16));
  {
    torch::NoGradGuard ng;
    out.fwd_us = median_us(warmup, reps, [&] { torch::layer_norm(x, {D}, w, b, 1e-6); });
  }
  const double both = median_us(warmup, reps, [&] {
    auto y = torch::layer_norm(x, {D}, w, b, 1e-6);
    y.backward(dy);
  });
  out.bwd_us = both - out.fwd_us;
  return out;
}

TorchTiming torch_sdpa(long long B, long long T, long long H, long long hd, bool bf16, int warmup, int reps) {
  TorchTiming out;
#if TORCH_VERSION_MAJOR >= 2
  if (!torch_cuda_available()) return out;
  auto q = torch::randn({B, H, T, hd}, opts(bf16)).requires_grad_(true);
  auto k = torch::randn({B, H, T, hd}, opts(bf16)).requires_grad_(true);
  auto v = torch::randn({B, H, T, hd}, opts(bf16)).requires_grad_(true);
  auto dy = torch::randn({B, H, T, hd}, opts(bf16));
  {
    torch::NoGradGuard ng;
    out.fwd_us = median_us(warmup, reps, [&] { at::scaled_dot_product_attention(q, k, v); });
  }
  const double both = median_us(warmup, reps, [&] {
    auto y = at::scaled_dot_product_attention(q, k, v);
    y.backward(dy);
  });
  out.bwd_us = both - out.fwd_us;
#endif
  return out;
}

TorchTiming torch_linear_gelu(long long M, long long N, long long K, bool bf16, int warmup, int reps) {
  TorchTiming out;
  if (!torch_cuda_available()) return out;
  auto x = torch::randn({M, K}, opts(bf16)).requires_grad_(true);
  auto w = (torch::randn({N, K}, opts(bf16)) * 0.02).requires_grad_(true);
  auto b = torch::zeros({N}, opts(bf16)).requires_grad_(true);
  auto dy = torch::randn({M, N}, opts(bf16));
  {
    torch::NoGradGuard ng;
    out.fwd_us = median_us(warmup, reps, [&] { torch::gelu(torch::linear(x, w, b)); });
  }
  const double both = median_us(warmup, reps, [&] { torch::gelu(torch::linear(x, w, b)).backward(dy); });
  out.bwd_us = both - out.fwd_us;
  return out;
}

TorchTiming torch_cross_entropy(long long B, long long K, bool bf16, int warmup, int reps) {
  TorchTiming out;
  if (!torch_cuda_available()) return out;
  auto logits = torch::randn({B, K}, opts(bf16)).requires_grad_(true);
  auto targets = torch::softmax(torch::randn({B, K}, opts(false)), 1).to(logits.scalar_type());
  {
    torch::NoGradGuard ng;
    out.fwd_us = median_us(warmup, reps, [&] { torch::nn::functional::cross_entropy(logits, targets); });
  }
  const double both =
      median_us(warmup, reps, [&] { torch::nn::functional::cross_entropy(logits, targets).backward(); });
  out.bwd_us = both - out.fwd_us;
  return out;
}

double torch_fused_adamw(long long n, int warmup, int reps) {
#if TORCH_VERSION_MAJOR >= 2
  if (!torch_cuda_available()) return -1;
  const auto f = opts(false);
  std::vector<at::Tensor> p{torch::randn({n}, f)}, g{torch::randn({n}, f)}, m{torch::zeros({n}, f)},
      v{torch::zeros({n}, f)}, vmax{}, step{torch::ones({1}, f)};
  return median_us(warmup, reps, [&] {
    at::_fused_adamw_(p, g, m, v, vmax, step, 1e-3, 0.9, 0.999, 0.05, 1e-8, false, false);
  });
#else
  (void)n, (void)warmup, (void)reps;
  return -1;
#endif
}

}  // namespace vitscale::bench
