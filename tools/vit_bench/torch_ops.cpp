// torch_ops.cpp — LibTorch baselines for vit_bench (see torch_ops.h). The only
// file of vit_bench that includes LibTorch. Inputs are random (randn); bf16
// runs use bf16 tensors (what autocast would feed these ops). Autograd ops
// time their backward through autograd (one kept graph, backward again and
// again), so the figure includes what autograd itself costs, as in training.
#include "tools/vit_bench/torch_ops.h"

#ifdef VITSCALE_BENCH_CUDA
#include <cuda_runtime_api.h>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "tools/torch_ref/timm_attention.h"
#include "tools/torch_ref/torch_vit.h"

namespace vitscale::bench {
namespace {

bool can_run(const TorchRun& run) {
#ifdef VITSCALE_BENCH_CUDA
  return !run.cuda || torch::cuda::is_available();
#else
  return !run.cuda;
#endif
}

// Microseconds of each of run.reps calls of f() after run.warmup untimed ones.
template <class F> std::vector<float> times_us(const TorchRun& run, F& f) {
  for (int i = 0; i < run.warmup; ++i) f();
  std::vector<float> t;
  if (!run.cuda) {
    for (int r = 0; r < run.reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      t.push_back(std::chrono::duration<float, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    return t;
  }
#ifdef VITSCALE_BENCH_CUDA
  // Events on the legacy default stream: LibTorch's current stream unless a program changes it.
  torch::cuda::synchronize();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int r = 0; r < run.reps; ++r) {
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
#endif
  return t;
}

template <class F> double median_us(const TorchRun& run, F&& f) {
  std::vector<float> t = times_us(run, f);
  if (t.empty()) return -1;
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

torch::TensorOptions opts(const TorchRun& run, bool bf16) {
  return torch::TensorOptions()
      .device(run.cuda ? torch::kCUDA : torch::kCPU)
      .dtype(bf16 ? torch::kBFloat16 : torch::kFloat32);
}

// Forward under no_grad; backward alone, on one graph built once and kept
// (retain_graph), so no figure is a difference of two noisy ones.
template <class Forward> TorchTiming autograd_timing(const TorchRun& run, Forward&& forward, const torch::Tensor& dy) {
  TorchTiming out;
  {
    torch::NoGradGuard no_grad;
    out.fwd_us = median_us(run, [&] { forward(); });
  }
  const torch::Tensor y = forward();
  out.bwd_us = median_us(run, [&] { y.backward(dy, /*retain_graph=*/true); });
  return out;
}

}  // namespace

bool torch_cuda_available() { return torch::cuda::is_available(); }
std::string torch_version() { return TORCH_VERSION; }

TorchTiming torch_layernorm(const TorchRun& run, long long R, long long D, bool bf16) {
  if (!can_run(run)) return {};
  auto x = torch::randn({R, D}, opts(run, bf16)).requires_grad_(true);                                // (R, D)
  auto w = torch::ones({D}, opts(run, bf16)).requires_grad_(true), b = torch::zeros({D}, opts(run, bf16)).requires_grad_(true);
  auto dy = torch::randn({R, D}, opts(run, bf16));                                                    // (R, D)
  return autograd_timing(run, [&] { return torch::layer_norm(x, {D}, w, b, 1e-6); }, dy);
}

double torch_add_layernorm(const TorchRun& run, long long R, long long D) {
  if (!can_run(run)) return -1;
  torch::NoGradGuard no_grad;
  auto x = torch::randn({R, D}, opts(run, false)), a = torch::randn({R, D}, opts(run, false));  // (R, D) each
  auto w = torch::ones({D}, opts(run, false)), b = torch::zeros({D}, opts(run, false));
  return median_us(run, [&] {
    auto sum = x + a;
    torch::layer_norm(sum, {D}, w, b, 1e-6);
  });
}

double torch_add(const TorchRun& run, long long n) {
  if (!can_run(run)) return -1;
  torch::NoGradGuard no_grad;
  auto x = torch::randn({n}, opts(run, false)), a = torch::randn({n}, opts(run, false)), y = torch::empty({n}, opts(run, false));
  return median_us(run, [&] { torch::add_out(y, x, a); });
}

TorchTiming torch_attention(const TorchRun& run, long long B, long long T, long long H, long long hd, bool bf16) {
  if (!can_run(run)) return {};
  auto qkv = torch::randn({B, T, 3 * H * hd}, opts(run, bf16)).requires_grad_(true);  // (B, T, 3·D)
  auto dy = torch::randn({B, T, H * hd}, opts(run, bf16));                             // (B, T, D)
  return autograd_timing(run, [&] { return torch_ref::timm_attention(qkv, H, true); }, dy);
}

TorchTiming torch_linear(const TorchRun& run, long long M, long long N, long long K, bool gelu, bool bf16) {
  if (!can_run(run)) return {};
  auto x = torch::randn({M, K}, opts(run, bf16)).requires_grad_(true);             // (M, K)
  auto w = (torch::randn({N, K}, opts(run, bf16)) * 0.02).requires_grad_(true);   // (N, K)
  auto b = torch::zeros({N}, opts(run, bf16)).requires_grad_(true);               // (N)
  auto dy = torch::randn({M, N}, opts(run, bf16));                                // (M, N)
  return autograd_timing(run, [&] {
    auto y = torch::linear(x, w, b);
    return gelu ? torch::gelu(y) : y;
  }, dy);
}

double torch_gelu_backward(const TorchRun& run, long long n) {
  if (!can_run(run)) return -1;
  torch::NoGradGuard no_grad;
  auto pre = torch::randn({n}, opts(run, false)), dy = torch::randn({n}, opts(run, false));
  return median_us(run, [&] { at::gelu_backward(dy, pre); });
}

TorchTiming torch_cross_entropy(const TorchRun& run, long long B, long long K, bool bf16) {
  if (!can_run(run)) return {};
  auto logits = torch::randn({B, K}, opts(run, bf16)).requires_grad_(true);                                   // (B, K)
  auto targets = torch::softmax(torch::randn({B, K}, opts(run, false)), 1).to(logits.scalar_type());       // (B, K)
  const torch::Tensor dy = torch::ones({}, opts(run, bf16));  // d(loss)/d(loss)
  return autograd_timing(run, [&] { return torch::nn::functional::cross_entropy(logits, targets); }, dy);
}

double torch_fused_adamw(const TorchRun& run, long long n) {
#if TORCH_VERSION_MAJOR >= 2
  if (!run.cuda || !can_run(run)) return -1;
  const auto f = opts(run, false);
  std::vector<at::Tensor> p{torch::randn({n}, f)}, g{torch::randn({n}, f)}, m{torch::zeros({n}, f)},
      v{torch::zeros({n}, f)}, vmax{}, step{torch::ones({1}, f)};
  return median_us(run, [&] {
    at::_fused_adamw_(p, g, m, v, vmax, step, 1e-3, 0.9, 0.999, 0.05, 1e-8, false, false);
  });
#else
  (void)run, (void)n;
  return -1;
#endif
}

double torch_clip_adamw(const TorchRun& run, const ViTConfig& config) {
  if (!can_run(run)) return -1;
  ImageNorm norm;
  norm.channels = config.channels;
  torch_ref::TorchViT model(config, norm, torch_ref::TorchOptions{run.cuda ? "cuda" : "cpu", false});
  // Small random weights and one real backward: every parameter gets a gradient, as in training.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  for (float& w : flat) w = u(rng);
  model.load_flat(flat);
  const int batch = 8;
  const std::size_t pixels = static_cast<std::size_t>(config.channels) * config.image_size * config.image_size;
  std::vector<std::uint8_t> images(batch * pixels);
  for (auto& px : images) px = static_cast<std::uint8_t>(rng() & 255);
  std::vector<float> targets(static_cast<std::size_t>(batch) * config.num_classes, 0.f);
  for (int i = 0; i < batch; ++i) targets[static_cast<std::size_t>(i) * config.num_classes + i % config.num_classes] = 1.f;
  model.forward(images, targets, batch);
  model.backward();
  AdamWHyper hyper;
  hyper.max_grad_norm = 1.f;
  return median_us(run, [&] {
    model.optimizer_step(hyper);  // the gradients stay: each call clips and steps on them again
    ++hyper.step;
  });
}

}  // namespace vitscale::bench
