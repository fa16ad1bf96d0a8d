// torch_vit.h — the same Vision Transformer written in LibTorch: the parity
// oracle of vitscale's model tests and the baseline of its step benchmarks.
//
// It is timm's VisionTransformer, op for op, as eager PyTorch runs it:
// Conv2d patch embedding, class token, position embedding, pre-norm blocks
// (LayerNorm eps 1e-6 → qkv → softmax(q·kᵀ·hd^-½)·v → proj → residual;
// LayerNorm → fc1 → exact GELU → fc2 → residual), final `norm` then token 0
// (cls pooling) or the token mean then `fc_norm` (mean pooling), head. Autograd
// computes the gradients; torch::optim::AdamW (two groups: decay on weight
// matrices only) and clip_grad_norm_ take the step. Nothing of vitscale's
// kernels is used, so agreement is evidence, not tautology.
//
// Parameters are named, shaped and ordered as ParamTable (timm's names) and
// move through the same flat layout (ParamTable offsets) or safetensors file.
//
// This header does not include LibTorch (the implementation hides it), so the
// tests and benchmarks using it compile in seconds rather than minutes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_config.h"

namespace vitscale::torch_ref {

struct TorchOptions {
  std::string device = "cpu";  // any torch::Device string: "cpu", "cuda", "cuda:1"
  // Run the forward under autocast to bf16 (fp32 master weights and
  // gradients, as torch.autocast does): the mixed-precision GPU baseline.
  bool bf16_autocast = false;
  // PyTorch >= 2: attention through F.scaled_dot_product_attention (fused
  // kernels; what timm runs, fused_attn). LibTorch 1.13 has none: the
  // explicit softmax(q·kᵀ)·v path is used whatever this says.
  bool fused_attention = true;
};

struct TorchForward {
  float loss = 0.f;           // mean over the batch of -Σ t·log softmax(logits)
  std::vector<float> logits;  // (batch, K) f32
};

class TorchViT {
 public:
  // Parameters start at zero: load_flat or load_safetensors before use.
  TorchViT(const ViTConfig& config, const ImageNorm& norm, TorchOptions options = {});
  ~TorchViT();
  TorchViT(TorchViT&&) noexcept;
  TorchViT& operator=(TorchViT&&) noexcept;

  const ViTConfig& config() const;
  const ParamTable& table() const;
  std::string device() const;

  // Weights in ParamTable's flat layout (total_numel floats, padding ignored).
  void load_flat(std::span<const float> flat);
  std::vector<float> flat_params() const;
  // Every parameter must be present with its timm shape; anything missing,
  // mis-shaped or unknown (other than optimizer./state. entries) is refused
  // with std::runtime_error naming the file and the tensor.
  void load_safetensors(const std::string& path);

  // images (batch, C, S, S) u8 at any source side S (bilinearly resized to
  // image_size when S differs), targets (batch, K) f32 soft targets.
  // With `train` the graph is kept for backward(); otherwise no grad.
  TorchForward forward(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                       bool train = true);
  // Gradients of the last training forward's mean loss accumulate into .grad.
  void backward();
  // Gradients in ParamTable's flat layout (zeros where none was computed).
  std::vector<float> flat_grads() const;
  // Drops the gradients (set_to_none, PyTorch 2's default).
  void zero_grads();
  // The weights' moving average, as vit_train's --ema-decay keeps it
  // (train/weight_ema.h): start_average copies the weights; update_average:
  // ema ← d·ema + (1 − d)·weights, two products and an add (separate ops,
  // so no FMA: vit_train's rounding); swap_average exchanges the weights and
  // the average (again: back as they were). The optimizer keeps its tensors.
  void start_average();
  void update_average(float decay);
  void swap_average();
  // clip_grad_norm_ when hyper.max_grad_norm > 0 (returns the norm before
  // clipping; nullopt without clipping), then one AdamW step at hyper's
  // lr, betas, eps and weight decay. hyper.step must count 1, 2, 3, ...:
  // AdamW keeps its own step count for bias correction.
  std::optional<double> optimizer_step(const AdamWHyper& hyper);
  // zero_grads, forward, backward, optimizer_step; returns the loss. The
  // benchmark's unit of work: only the loss comes back to the host.
  float train_step(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                   const AdamWHyper& hyper);
  // `steps` train_steps under LibTorch's profiler: a table of the time of
  // each op called directly by the forward, the backward (autograd nodes)
  // and the optimizer, per step. LibTorch 1.x only (its legacy profiler);
  // elsewhere a line saying so. hyper.step is the first step's number.
  std::string profile_ops(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                          AdamWHyper hyper, int steps);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// LibTorch's intra-op thread count (OpenMP's, in this build of LibTorch).
void set_torch_threads(int threads);
int torch_threads();
// "LibTorch 1.13.0 (cpu)"-like description for reports.
std::string torch_description();

}  // namespace vitscale::torch_ref
