// cpu_backend.h — the CPU implementation of Backend: shape checks, then the
// fp32 kernels of kernels/cpu.
//
// Every op validates ranks, sizes and dtypes first and throws
// std::invalid_argument naming the op and the offending tensor; only then does
// it call a kernel. Memory is 64-byte aligned host memory; "device" copies are
// memcpy. The only state is scratch, grown on first use so that steps do not
// allocate: attention's (per-thread transposed K/V and score rows) and the
// weight gradients' partial sums (a few copies of the largest weight).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace vitscale {

class CpuBackend final : public Backend {
 public:
  // threads <= 0: OpenMP's default. Sets the OpenMP thread count of the process.
  explicit CpuBackend(int threads = 0);

  DeviceKind kind() const override { return DeviceKind::cpu; }
  std::string name() const override;
  DType activation_dtype() const override { return DType::f32; }

  Buffer allocate(std::size_t bytes, const std::string& what) override;
  Buffer allocate_host(std::size_t bytes) override;
  void copy_to_device(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_device(void* dst, const void* src, std::size_t bytes) override;
  void fill_zero(TensorView t) override;
  void synchronize() override {}
  void cast(TensorView dst, TensorView src) override;

  void image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                        int image_size) override;
  void embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) override;
  void embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                             TensorView d_tokens) override;

  void linear(TensorView out, TensorView in, TensorView weight, TensorView bias) override;
  void linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) override;
  void linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out, TensorView in,
                       TensorView weight) override;
  void gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) override;
  void mlp_backward(const MlpBackwardViews& v) override;

  void layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                 TensorView beta) override;
  void add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a, TensorView b,
                     TensorView gamma, TensorView beta) override;
  void layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out, TensorView in,
                          TensorView mean, TensorView rstd, TensorView gamma) override;
  void add(TensorView out, TensorView a, TensorView b) override;

  void attention(TensorView out, TensorView lse, TensorView qkv, int heads) override;
  void attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out, TensorView lse,
                          int heads) override;

  void pool(TensorView pooled, TensorView x, Pooling mode) override;
  void pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) override;
  void cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                     float grad_scale) override;

  void grad_norm_squared(TensorView out, TensorView grads) override;
  void adamw(TensorView params, TensorView grads, TensorView m, TensorView v, std::span<const ParamSegment> segments,
             const AdamWHyper& hyper, TensorView grad_norm_sq) override;
  void weight_ema(TensorView ema, TensorView params, float decay) override;

 private:
  // Attention scratch for the current thread count and shape; grows, never shrinks.
  float* attention_scratch(std::int64_t T, std::int64_t head_dim, int threads);

  // The weight gradient's partial sums (kernels/cpu/linear.h); grows, never shrinks.
  float* gemm_scratch(std::size_t floats);

  std::vector<float> attention_scratch_;
  std::vector<float> gemm_scratch_;
};

}  // namespace vitscale
