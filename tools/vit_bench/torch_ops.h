// torch_ops.h — LibTorch's versions of the benchmarked ops (torch-free header).
// Each returns the median time in microseconds, or a negative value when the
// op cannot run there (no CUDA in this LibTorch, or the op is not in this
// version). Built only with VITSCALE_HAVE_TORCH. CUDA runs are timed with
// events on LibTorch's (default) stream, CPU runs with the wall clock on
// LibTorch's intra-op threads (set them with torch_ref::set_torch_threads).
#pragma once

#include <string>

#include "runtime/vit_config.h"

namespace vitscale::bench {

struct TorchTiming {
  double fwd_us = -1, bwd_us = -1;  // bwd: autograd's backward of the op's graph
  double both_us() const { return fwd_us < 0 || bwd_us < 0 ? -1 : fwd_us + bwd_us; }  // forward + backward
};

// Where LibTorch's side runs and how often.
struct TorchRun {
  bool cuda = true;  // CUDA tensors (needs a LibTorch with CUDA and a VITSCALE_BENCH_CUDA build); else CPU tensors
  int warmup = 10, reps = 50;
};

bool torch_cuda_available();
std::string torch_version();
TorchTiming torch_layernorm(const TorchRun& run, long long R, long long D, bool bf16);
// x + a, then layer_norm (LibTorch has no fused residual add): forward only.
double torch_add_layernorm(const TorchRun& run, long long R, long long D);
double torch_add(const TorchRun& run, long long n);
// Attention on qkv (B, T, 3·H·hd) as the reference model runs it (timm_attention.h):
// fused SDPA where PyTorch has it (>= 2), else the explicit softmax(q·kᵀ)·v.
TorchTiming torch_attention(const TorchRun& run, long long B, long long T, long long H, long long hd, bool bf16);
// y = x (M, K) · wᵀ (K, N) + b, then exact GELU when `gelu`; bwd: the backward of that graph (d_x, d_w, d_b).
TorchTiming torch_linear(const TorchRun& run, long long M, long long N, long long K, bool gelu, bool bf16);
double torch_gelu_backward(const TorchRun& run, long long n);  // at::gelu_backward, exact GELU
TorchTiming torch_cross_entropy(const TorchRun& run, long long B, long long K, bool bf16);
double torch_fused_adamw(const TorchRun& run, long long n);  // CUDA, PyTorch >= 2 only: _fused_adamw_, no clip
// clip_grad_norm_(1.0) and one torch::optim::AdamW step over `config`'s
// parameters, one tensor each (the reference model's optimizer_step).
double torch_clip_adamw(const TorchRun& run, const ViTConfig& config);

}  // namespace vitscale::bench
