// backend.h — the interface the model calls op by op.
//
// Two implementations: CpuBackend (kernels/cpu, the fp32 reference and a usable
// CPU trainer) and CudaBackend (kernels/cuda, fp32 or bf16 activations). The
// model owns no kernels; it only plans memory and calls these ops in order.
//
// Conventions (stated once, as llm.c does):
//   * parameter gradients ACCUMULATE (+=), so micro-batches accumulate for free;
//   * activation gradients are ASSIGNED (=), except layernorm_backward's d_in,
//     which accumulates because it is the residual stream's gradient;
//   * shapes: B batch, T tokens (patches + optional class token), Np patches,
//     D embedding dim, H heads, hd = D/H, K classes, F = mlp hidden dim.
//   * weights use nn.Linear's (out, in) layout: out = in · Wᵀ + b.
//   * "activation" tensors may be f32 or bf16 (the backend's precision);
//     parameter views passed to forward ops are the *compute* copy of the weights
//     (fp32 master weights themselves, or their bf16 shadow); gradients, master
//     weights and optimizer state are always f32.
// Every op validates its shapes and throws std::invalid_argument naming the op
// and the shapes; device errors throw std::runtime_error naming the op.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "runtime/buffer.h"
#include "runtime/host_read_fence.h"
#include "runtime/tensor.h"

namespace vitscale {

enum class DeviceKind { cpu, cuda };

// Per-channel normalisation applied to uint8 pixels: x = (p/255 - mean[c]) / std[c].
struct ImageNorm {
  int channels = 3;
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
};

enum class Pooling { cls_token, mean };

// The tensors of one MLP's backward, fc2(gelu(fc1(in))), R rows.
struct MlpBackwardViews {
  TensorView d_in;          // (R, D), assigned; may be empty
  TensorView d_fc1_weight;  // (F, D), accumulated
  TensorView d_fc1_bias;    // (F), accumulated; may be empty
  TensorView d_fc2_weight;  // (D, F), accumulated
  TensorView d_fc2_bias;    // (D), accumulated; may be empty
  TensorView d_hidden;      // (R, F): d(pre), working memory
  TensorView d_out;         // (R, D): d(fc2's output)
  TensorView in;            // (R, D): fc1's input
  TensorView pre;           // (R, F): fc1's output, before GELU
  TensorView act;           // (R, F): gelu(pre), fc2's input
  TensorView fc1_weight;    // (F, D)
  TensorView fc2_weight;    // (D, F)
};

// One contiguous run of the flat parameter buffer with its weight-decay rule.
struct ParamSegment {
  std::int64_t offset = 0;  // in elements, into the flat parameter buffer
  std::int64_t numel = 0;
  bool decay = true;  // false for biases, LayerNorm parameters, cls token, pos embed
};

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.05f;
  int step = 1;                  // 1-based, for bias correction
  float max_grad_norm = 0.f;     // <= 0: no clipping
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;          // "cpu (2 threads, avx512 GEMM)", "cuda:0 NVIDIA H200"
  virtual DType activation_dtype() const = 0;    // f32 on CPU; f32 or bf16 on CUDA

  // ---- memory --------------------------------------------------------------
  virtual Buffer allocate(std::size_t bytes, const std::string& what) = 0;  // device memory
  virtual Buffer allocate_host(std::size_t bytes) = 0;  // host memory the device copies from fast
  virtual std::size_t device_memory_in_use() const { return 0; }
  // Host → device, ordered on the compute stream (host memory must stay alive
  // and unchanged until synchronize() or until host_reads_done()'s fence completes).
  virtual void copy_to_device(void* dst, const void* src, std::size_t bytes) = 0;
  // A fence that completes once the device has read the host memory of every
  // copy_to_device issued so far (host_read_fence.h); the host does not wait
  // here. CPU: complete already (its copies are synchronous).
  virtual HostReadFence host_reads_done() { return {}; }
  // Device → host; returns once the data is on the host.
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_device(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void fill_zero(TensorView t) = 0;
  virtual void synchronize() = 0;
  // dst = src converted, same numel: f32 → bf16 (the weight shadow), bf16 → f32
  // (reading results), or a plain copy when the dtypes match.
  virtual void cast(TensorView dst, TensorView src) = 0;

  // ---- embedding -------------------------------------------------------------
  // images (B, C, S, S) u8 at the source size S; patches (B, Np, C*P*P) with
  // Np = (I/P)², the patch vector ordered (c, py, px) like a conv weight's flatten.
  // When S != I (the model's image size) the image is bilinearly resized first
  // (align_corners=False), then normalised.
  virtual void image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                                int image_size) = 0;
  // tokens (B, T, D) = [cls; patch_emb (B, Np, D)] + pos (T, D); cls (D) may be empty (T == Np).
  virtual void embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) = 0;
  // d_patch_emb (B, Np, D) =, d_cls (D) +=, d_pos (T, D) +=; from d_tokens (B, T, D).
  virtual void embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                                     TensorView d_tokens) = 0;

  // ---- linear layers -----------------------------------------------------------
  // out (M, N) = in (M, K) · weight (N, K)ᵀ + bias (N); bias may be empty.
  virtual void linear(TensorView out, TensorView in, TensorView weight, TensorView bias) = 0;
  // pre (M, N) = in · weightᵀ + bias; out (M, N) = gelu(pre) (exact erf GELU).
  virtual void linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) = 0;
  // d_in (M, K) = d_out · weight (may be empty: not needed);
  // d_weight (N, K) += d_outᵀ · in;  d_bias (N) += column sums of d_out (may be empty).
  virtual void linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out,
                               TensorView in, TensorView weight) = 0;
  // d_pre (M, N) = d_out ⊙ gelu'(pre); d_pre may alias d_out.
  virtual void gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) = 0;
  // fc2's linear_backward, gelu_backward, fc1's linear_backward. A backend may
  // fuse them (the CPU one does, keeping each row block's d_hidden in cache)
  // as long as every output keeps the bits of these three calls.
  virtual void mlp_backward(const MlpBackwardViews& v) {
    linear_backward(v.d_hidden, v.d_fc2_weight, v.d_fc2_bias, v.d_out, v.act, v.fc2_weight);
    gelu_backward(v.d_hidden, v.d_hidden, v.pre);
    linear_backward(v.d_in, v.d_fc1_weight, v.d_fc1_bias, v.d_hidden, v.in, v.fc1_weight);
  }

  // ---- layernorm ---------------------------------------------------------------
  // Over the last dim D of in (R, D): out = (in - mean) * rstd * gamma + beta;
  // mean (R) and rstd (R) are saved in f32 for backward. eps = 1e-6 (timm's ViT).
  virtual void layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                         TensorView beta) = 0;
  // sum (R, D) = a + b (the residual stream); out = layernorm(sum). Fused: one pass.
  virtual void add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a,
                             TensorView b, TensorView gamma, TensorView beta) = 0;
  // d_in (R, D) += (accumulates: the residual stream), d_gamma (D) +=, d_beta (D) +=.
  virtual void layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out,
                                  TensorView in, TensorView mean, TensorView rstd, TensorView gamma) = 0;
  // out (N) = a + b (elementwise, same shapes).
  virtual void add(TensorView out, TensorView a, TensorView b) = 0;

  // ---- attention ---------------------------------------------------------------
  // qkv (B, T, 3D) laid out as timm's (B, T, 3, H, hd); out (B, T, D) laid out
  // (B, T, H, hd); lse (B, H, T) f32 = log-sum-exp of each scaled score row,
  // saved for backward. scale = 1/sqrt(hd).
  virtual void attention(TensorView out, TensorView lse, TensorView qkv, int heads) = 0;
  // d_qkv (B, T, 3D) = ; P is recomputed from qkv and lse.
  virtual void attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out,
                                  TensorView lse, int heads) = 0;

  // ---- pooling and loss --------------------------------------------------------
  // pooled (B, D) = x[:, 0] (cls_token) or mean over T (mean); x (B, T, D).
  virtual void pool(TensorView pooled, TensorView x, Pooling mode) = 0;
  // d_x (B, T, D) = (zero except row 0 for cls_token; d_pooled / T for mean).
  virtual void pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) = 0;
  // Softmax cross-entropy against soft targets (B, K) f32 (one-hot, smoothed,
  // or mixed): losses (B) f32 = -Σ t·log softmax(logits);
  // d_logits (B, K) = (softmax - t) * grad_scale (grad_scale = 1/global batch).
  virtual void cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                             float grad_scale) = 0;

  // ---- optimizer -----------------------------------------------------------------
  // out (1) f32 = Σ grads² over the flat f32 gradient buffer; deterministic
  // (the same bits on every run).
  virtual void grad_norm_squared(TensorView out, TensorView grads) = 0;
  // AdamW over flat f32 buffers (n), one pass. When hyper.max_grad_norm > 0 the
  // gradients are scaled by min(1, max_norm / sqrt(*grad_norm_sq)) first
  // (grad_norm_sq (1) f32, device memory, from grad_norm_squared).
  // segments give the weight-decay rule; offsets are relative to params.data.
  virtual void adamw(TensorView params, TensorView grads, TensorView m, TensorView v,
                     std::span<const ParamSegment> segments, const AdamWHyper& hyper, TensorView grad_norm_sq) = 0;
  // The weights' moving average: ema (n) f32 ← decay·ema + (1 − decay)·params
  // (n) f32, elementwise, each product rounded (no FMA): the same bits on every
  // backend and thread count (kernels/cpu/weight_ema.h).
  virtual void weight_ema(TensorView ema, TensorView params, float decay) = 0;
};

// The CPU backend (always available). threads <= 0: OpenMP's default.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace vitscale
