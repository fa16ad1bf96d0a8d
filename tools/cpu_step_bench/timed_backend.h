// timed_backend.h — a Backend that forwards every op to another one and
// records the wall time of each call: the per-op breakdown of a training step.
//
// Only meaningful for synchronous backends (the CPU one): each op has finished
// when the call returns. Both the wall time and the process's CPU time (every
// thread) are kept: on a shared machine the wall time includes waiting for a
// core, the CPU time does not. Linear ops are keyed by their GEMM shape, so
// that a slow GEMM shape stands out from the others.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "runtime/backend.h"

namespace vitscale::bench {

struct OpTime {
  long calls = 0;
  double seconds = 0;      // wall
  double cpu_seconds = 0;  // the process's CPU time, all threads
  double min_seconds = 0;  // the fastest call's wall time: the op's cost on an idle machine, roughly
};

double process_cpu_seconds();

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner) : inner_(inner) {}

  // Timing is off until enabled, so set-up (init, uploads) is not counted.
  void set_enabled(bool on) { enabled_ = on; }
  void reset() { times_.clear(); }
  const std::map<std::string, OpTime>& times() const { return times_; }
  // A table sorted by CPU time: op, calls, wall and CPU ms per step, share of
  // CPU time; `steps` divides.
  std::string report(int steps) const;

  DeviceKind kind() const override { return inner_.kind(); }
  std::string name() const override { return inner_.name(); }
  DType activation_dtype() const override { return inner_.activation_dtype(); }

  Buffer allocate(std::size_t bytes, const std::string& what) override { return inner_.allocate(bytes, what); }
  Buffer allocate_host(std::size_t bytes) override { return inner_.allocate_host(bytes); }
  std::size_t device_memory_in_use() const override { return inner_.device_memory_in_use(); }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_device(void* dst, const void* src, std::size_t bytes) override;
  void fill_zero(TensorView t) override;
  void synchronize() override { inner_.synchronize(); }
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
  // Runs `op`, adding its wall time under `key` when enabled.
  template <class Op>
  void timed(const std::string& key, Op&& op) {
    if (!enabled_) return op();
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    op();
    const auto t1 = std::chrono::steady_clock::now();
    OpTime& t = times_[key];
    const double wall = std::chrono::duration<double>(t1 - t0).count();
    t.min_seconds = t.calls == 0 ? wall : std::min(t.min_seconds, wall);
    ++t.calls;
    t.cpu_seconds += process_cpu_seconds() - c0;
    t.seconds += wall;
  }

  Backend& inner_;
  bool enabled_ = false;
  std::map<std::string, OpTime> times_;
};

}  // namespace vitscale::bench
