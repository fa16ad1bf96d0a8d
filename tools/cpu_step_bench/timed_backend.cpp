#include "tools/cpu_step_bench/timed_backend.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace vitscale::bench {
namespace {

// "linear MxK->N": the GEMM of a linear op, out (M, N) = in (M, K) · weight (N, K)ᵀ.
std::string gemm_key(const char* op, const TensorView& in, const TensorView& weight) {
  return std::string(op) + " " + std::to_string(in.dim(0)) + "x" + std::to_string(in.dim(1)) + "->" +
         std::to_string(weight.dim(0));
}

}  // namespace

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::string TimedBackend::report(int steps) const {
  std::vector<std::pair<std::string, OpTime>> rows(times_.begin(), times_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.cpu_seconds > b.second.cpu_seconds; });
  double wall = 0, cpu = 0;
  for (const auto& r : rows) wall += r.second.seconds, cpu += r.second.cpu_seconds;
  std::string out;
  char line[200];
  std::snprintf(line, sizeof line, "  %-36s %6s %12s %12s %7s %12s\n", "op (linear: M x K -> N)", "calls",
                "wall ms/step", "cpu ms/step", "cpu %", "min ms/call");
  out += line;
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "  %-36s %6ld %12.3f %12.3f %6.1f%% %12.3f\n", name.c_str(), t.calls / steps,
                  1e3 * t.seconds / steps, 1e3 * t.cpu_seconds / steps, 100.0 * t.cpu_seconds / cpu,
                  1e3 * t.min_seconds);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-36s %6s %12.3f %12.3f\n", "total of ops", "", 1e3 * wall / steps,
                1e3 * cpu / steps);
  out += line;
  return out;
}

void TimedBackend::copy_to_device(void* dst, const void* src, std::size_t bytes) {
  timed("copy_to_device", [&] { inner_.copy_to_device(dst, src, bytes); });
}
void TimedBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  timed("copy_to_host", [&] { inner_.copy_to_host(dst, src, bytes); });
}
void TimedBackend::copy_device(void* dst, const void* src, std::size_t bytes) {
  timed("copy_device", [&] { inner_.copy_device(dst, src, bytes); });
}
void TimedBackend::fill_zero(TensorView t) {
  timed("fill_zero", [&] { inner_.fill_zero(t); });
}
void TimedBackend::cast(TensorView dst, TensorView src) {
  timed("cast", [&] { inner_.cast(dst, src); });
}

void TimedBackend::image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                                    int image_size) {
  timed("image_to_patches", [&] { inner_.image_to_patches(patches, images, norm, patch, image_size); });
}
void TimedBackend::embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) {
  timed("embed_tokens", [&] { inner_.embed_tokens(tokens, patch_emb, cls_token, pos_embed); });
}
void TimedBackend::embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                                         TensorView d_tokens) {
  timed("embed_tokens_backward",
        [&] { inner_.embed_tokens_backward(d_patch_emb, d_cls_token, d_pos_embed, d_tokens); });
}

void TimedBackend::linear(TensorView out, TensorView in, TensorView weight, TensorView bias) {
  timed(gemm_key("linear", in, weight), [&] { inner_.linear(out, in, weight, bias); });
}
void TimedBackend::linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) {
  timed(gemm_key("linear_gelu", in, weight), [&] { inner_.linear_gelu(pre, out, in, weight, bias); });
}
void TimedBackend::linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out,
                                   TensorView in, TensorView weight) {
  timed(gemm_key(d_in.empty() ? "linear_backward (no d_in)" : "linear_backward", in, weight),
        [&] { inner_.linear_backward(d_in, d_weight, d_bias, d_out, in, weight); });
}
void TimedBackend::gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) {
  timed("gelu_backward", [&] { inner_.gelu_backward(d_pre, d_out, pre); });
}

void TimedBackend::mlp_backward(const MlpBackwardViews& v) {
  timed(gemm_key("mlp_backward", v.in, v.fc1_weight), [&] { inner_.mlp_backward(v); });
}

void TimedBackend::layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                             TensorView beta) {
  timed("layernorm", [&] { inner_.layernorm(out, mean, rstd, in, gamma, beta); });
}
void TimedBackend::add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a,
                                 TensorView b, TensorView gamma, TensorView beta) {
  timed("add_layernorm", [&] { inner_.add_layernorm(sum, out, mean, rstd, a, b, gamma, beta); });
}
void TimedBackend::layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out,
                                      TensorView in, TensorView mean, TensorView rstd, TensorView gamma) {
  timed("layernorm_backward", [&] { inner_.layernorm_backward(d_in, d_gamma, d_beta, d_out, in, mean, rstd, gamma); });
}
void TimedBackend::add(TensorView out, TensorView a, TensorView b) {
  timed("add", [&] { inner_.add(out, a, b); });
}

void TimedBackend::attention(TensorView out, TensorView lse, TensorView qkv, int heads) {
  timed("attention", [&] { inner_.attention(out, lse, qkv, heads); });
}
void TimedBackend::attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out,
                                      TensorView lse, int heads) {
  timed("attention_backward", [&] { inner_.attention_backward(d_qkv, d_out, qkv, out, lse, heads); });
}

void TimedBackend::pool(TensorView pooled, TensorView x, Pooling mode) {
  timed("pool", [&] { inner_.pool(pooled, x, mode); });
}
void TimedBackend::pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) {
  timed("pool_backward", [&] { inner_.pool_backward(d_x, d_pooled, mode); });
}
void TimedBackend::cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                                 float grad_scale) {
  timed("cross_entropy", [&] { inner_.cross_entropy(losses, d_logits, logits, targets, grad_scale); });
}

void TimedBackend::grad_norm_squared(TensorView out, TensorView grads) {
  timed("grad_norm_squared", [&] { inner_.grad_norm_squared(out, grads); });
}
void TimedBackend::adamw(TensorView params, TensorView grads, TensorView m, TensorView v,
                         std::span<const ParamSegment> segments, const AdamWHyper& hyper, TensorView grad_norm_sq) {
  timed("adamw", [&] { inner_.adamw(params, grads, m, v, segments, hyper, grad_norm_sq); });
}
void TimedBackend::weight_ema(TensorView ema, TensorView params, float decay) {
  timed("weight_ema", [&] { inner_.weight_ema(ema, params, decay); });
}

}  // namespace vitscale::bench
