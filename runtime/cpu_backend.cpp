#include "runtime/cpu_backend.h"

#include <omp.h>

#include <cstring>
#include <stdexcept>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embed.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/patchify.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/weight_ema.h"

namespace vitscale {
namespace {

constexpr float kLayerNormEps = 1e-6f;  // timm's ViT

[[noreturn]] void refuse(const char* op, const std::string& why) {
  throw std::invalid_argument(std::string(op) + ": " + why);
}

// The f32 data of a required tensor of the given dims (-1: any), or a throw
// naming the op and the argument.
float* f32(const char* op, const char* arg, const TensorView& t, std::initializer_list<std::int64_t> dims) {
  if (t.empty()) refuse(op, std::string(arg) + " is empty");
  expect_dtype(op, arg, t, DType::f32);
  expect_shape(op, arg, t, dims);
  return static_cast<float*>(t.data);
}

// Same, for an argument that may be empty (then nullptr).
float* optional_f32(const char* op, const char* arg, const TensorView& t, std::initializer_list<std::int64_t> dims) {
  return t.empty() ? nullptr : f32(op, arg, t, dims);
}

void expect_same_shape(const char* op, const char* a_name, const TensorView& a, const char* b_name,
                       const TensorView& b) {
  bool same = a.rank == b.rank;
  for (int i = 0; same && i < a.rank; ++i) same = a.dim(i) == b.dim(i);
  if (!same) refuse(op, std::string(a_name) + " is " + a.describe() + " but " + b_name + " is " + b.describe());
}

void expect_distinct(const char* op, const char* a_name, const TensorView& a, const char* b_name, const TensorView& b) {
  if (a.data && a.data == b.data) refuse(op, std::string(a_name) + " must not alias " + b_name);
}

void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src) std::memmove(dst, src, bytes);  // memmove: a view may be copied onto itself
}

cpu::PoolKind pool_kind(Pooling mode) {
  return mode == Pooling::cls_token ? cpu::PoolKind::first_token : cpu::PoolKind::mean;
}

}  // namespace

// The GEMM and attention kernels are read here, not at the first call: an
// unknown or unsupported VITSCALE_CPU_GEMM or VITSCALE_CPU_ATTENTION is then
// refused at start-up, before any data is loaded or step is run.
CpuBackend::CpuBackend(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  cpu::gemm_isa();
  cpu::attention_isa();
}

std::string CpuBackend::name() const {
  const int threads = omp_get_max_threads();
  return "cpu (" + std::to_string(threads) + (threads == 1 ? " thread, " : " threads, ") +
         cpu::gemm_isa_name(cpu::gemm_isa()) + " GEMM, " + cpu::attention_isa_name(cpu::attention_isa()) +
         " attention)";
}

// ---- memory -----------------------------------------------------------------

Buffer CpuBackend::allocate(std::size_t bytes, const std::string& what) {
  try {
    return allocate_host_aligned(bytes);
  } catch (const std::exception& e) {
    throw std::runtime_error("cpu allocate " + what + ": " + e.what());
  }
}

Buffer CpuBackend::allocate_host(std::size_t bytes) { return allocate_host_aligned(bytes); }

void CpuBackend::copy_to_device(void* dst, const void* src, std::size_t bytes) { copy_bytes(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) { copy_bytes(dst, src, bytes); }
void CpuBackend::copy_device(void* dst, const void* src, std::size_t bytes) { copy_bytes(dst, src, bytes); }

void CpuBackend::fill_zero(TensorView t) {
  if (t.empty()) return;
  std::memset(t.data, 0, t.bytes());
}

void CpuBackend::cast(TensorView dst, TensorView src) {
  if (dst.dtype != DType::f32 || src.dtype != DType::f32)
    refuse("cast", "dst " + dst.describe() + ", src " + src.describe() + ": the CPU backend supports f32 only");
  if (dst.numel() != src.numel())
    refuse("cast", "dst " + dst.describe() + " and src " + src.describe() + " differ in size");
  if (dst.data != src.data) copy_bytes(dst.data, src.data, src.bytes());
}

// ---- embedding --------------------------------------------------------------

void CpuBackend::image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                                  int image_size) {
  const char* op = "image_to_patches";
  if (images.empty()) refuse(op, "images is empty");
  expect_dtype(op, "images", images, DType::u8);
  expect_shape(op, "images", images, {-1, -1, -1, -1});
  const std::int64_t B = images.dim(0), C = images.dim(1), S = images.dim(2);
  expect_shape(op, "images", images, {B, C, S, S});
  if (C != norm.channels || C < 1 || C > 3)
    refuse(op, "images " + images.describe() + " has " + std::to_string(C) + " channels, the normalisation " +
                   std::to_string(norm.channels) + " (1 to 3 supported)");
  if (patch <= 0 || image_size <= 0 || image_size % patch != 0)
    refuse(op,
           "image size " + std::to_string(image_size) + " is not a multiple of patch size " + std::to_string(patch));
  const cpu::PatchGeometry geom{B, C, image_size, patch};
  float* out = f32(op, "patches", patches, {B, geom.num_patches(), geom.patch_dim()});
  cpu::image_to_patches_u8(out, images.as<std::uint8_t>(), S, norm.mean, norm.std, geom);
}

void CpuBackend::embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) {
  const char* op = "embed_tokens";
  float* pe = f32(op, "patch_emb", patch_emb, {-1, -1, -1});
  const std::int64_t B = patch_emb.dim(0), Np = patch_emb.dim(1), D = patch_emb.dim(2);
  const float* cls = optional_f32(op, "cls_token", cls_token, {D});
  const std::int64_t T = Np + (cls ? 1 : 0);
  cpu::embed_forward(f32(op, "tokens", tokens, {B, T, D}), pe, cls, f32(op, "pos_embed", pos_embed, {T, D}), B, Np, D);
}

void CpuBackend::embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                                       TensorView d_tokens) {
  const char* op = "embed_tokens_backward";
  float* dpe = f32(op, "d_patch_emb", d_patch_emb, {-1, -1, -1});
  const std::int64_t B = d_patch_emb.dim(0), Np = d_patch_emb.dim(1), D = d_patch_emb.dim(2);
  float* dcls = optional_f32(op, "d_cls_token", d_cls_token, {D});
  const std::int64_t T = Np + (dcls ? 1 : 0);
  cpu::embed_backward(dpe, dcls, f32(op, "d_pos_embed", d_pos_embed, {T, D}), f32(op, "d_tokens", d_tokens, {B, T, D}),
                      B, Np, D);
}

// ---- linear layers ----------------------------------------------------------

void CpuBackend::linear(TensorView out, TensorView in, TensorView weight, TensorView bias) {
  const char* op = "linear";
  const float* x = f32(op, "in", in, {-1, -1});
  const std::int64_t M = in.dim(0), K = in.dim(1);
  const float* w = f32(op, "weight", weight, {-1, K});
  const std::int64_t N = weight.dim(0);
  float* y = f32(op, "out", out, {M, N});
  expect_distinct(op, "out", out, "in", in);
  cpu::linear_forward(y, x, w, optional_f32(op, "bias", bias, {N}), M, K, N);
}

void CpuBackend::linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) {
  const char* op = "linear_gelu";
  const float* x = f32(op, "in", in, {-1, -1});
  const std::int64_t M = in.dim(0), K = in.dim(1);
  const float* w = f32(op, "weight", weight, {-1, K});
  const std::int64_t N = weight.dim(0);
  float* p = f32(op, "pre", pre, {M, N});
  float* y = f32(op, "out", out, {M, N});
  expect_distinct(op, "pre", pre, "in", in);
  expect_distinct(op, "out", out, "pre", pre);
  cpu::linear_gelu_forward(p, y, x, w, optional_f32(op, "bias", bias, {N}), M, K, N);
}

void CpuBackend::linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out,
                                 TensorView in, TensorView weight) {
  const char* op = "linear_backward";
  const float* dy = f32(op, "d_out", d_out, {-1, -1});
  const std::int64_t M = d_out.dim(0), N = d_out.dim(1);
  const float* x = f32(op, "in", in, {M, -1});
  const std::int64_t K = in.dim(1);
  float* dw = f32(op, "d_weight", d_weight, {N, K});
  float* db = optional_f32(op, "d_bias", d_bias, {N});
  float* dx = nullptr;
  const float* w = nullptr;
  if (!d_in.empty()) {
    dx = f32(op, "d_in", d_in, {M, K});
    expect_distinct(op, "d_in", d_in, "d_out", d_out);
    w = f32(op, "weight", weight, {N, K});
  }
  cpu::linear_backward(dx, dw, db, dy, x, w, gemm_scratch(cpu::linear_backward_weight_scratch_floats(M, K, N)), M, K,
                       N);
}

void CpuBackend::gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) {
  const char* op = "gelu_backward";
  const float* p = f32(op, "pre", pre, {-1, -1});
  f32(op, "d_out", d_out, {pre.dim(0), pre.dim(1)});
  f32(op, "d_pre", d_pre, {pre.dim(0), pre.dim(1)});
  cpu::gelu_backward(d_pre.as<float>(), d_out.as<float>(), p, pre.numel());
}

void CpuBackend::mlp_backward(const MlpBackwardViews& v) {
  const char* op = "mlp_backward";
  const float* dy = f32(op, "d_out", v.d_out, {-1, -1});
  const std::int64_t M = v.d_out.dim(0), D = v.d_out.dim(1);
  const float* pre = f32(op, "pre", v.pre, {M, -1});
  const std::int64_t F = v.pre.dim(1);
  cpu::MlpBackwardArgs args{
      .d_in = optional_f32(op, "d_in", v.d_in, {M, D}),
      .d_fc1_weight = f32(op, "d_fc1_weight", v.d_fc1_weight, {F, D}),
      .d_fc1_bias = optional_f32(op, "d_fc1_bias", v.d_fc1_bias, {F}),
      .d_fc2_weight = f32(op, "d_fc2_weight", v.d_fc2_weight, {D, F}),
      .d_fc2_bias = optional_f32(op, "d_fc2_bias", v.d_fc2_bias, {D}),
      .d_hidden = f32(op, "d_hidden", v.d_hidden, {M, F}),
      .d_out = dy,
      .in = f32(op, "in", v.in, {M, D}),
      .pre = pre,
      .act = f32(op, "act", v.act, {M, F}),
      .fc1_weight = f32(op, "fc1_weight", v.fc1_weight, {F, D}),
      .fc2_weight = f32(op, "fc2_weight", v.fc2_weight, {D, F}),
  };
  // d_hidden is written while d_out, pre and act are read; d_in while d_hidden is.
  expect_distinct(op, "d_hidden", v.d_hidden, "d_out", v.d_out);
  expect_distinct(op, "d_hidden", v.d_hidden, "pre", v.pre);
  expect_distinct(op, "d_hidden", v.d_hidden, "act", v.act);
  if (args.d_in) expect_distinct(op, "d_in", v.d_in, "d_hidden", v.d_hidden);
  cpu::mlp_backward(args, gemm_scratch(cpu::mlp_backward_scratch_floats(M, D, F)), M, D, F);
}

// ---- layernorm --------------------------------------------------------------

void CpuBackend::layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                           TensorView beta) {
  const char* op = "layernorm";
  const float* x = f32(op, "in", in, {-1, -1});
  const std::int64_t R = in.dim(0), D = in.dim(1);
  cpu::layernorm_forward(f32(op, "out", out, {R, D}), f32(op, "mean", mean, {R}), f32(op, "rstd", rstd, {R}), x,
                         f32(op, "gamma", gamma, {D}), f32(op, "beta", beta, {D}), R, D, kLayerNormEps);
}

void CpuBackend::add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a,
                               TensorView b, TensorView gamma, TensorView beta) {
  const char* op = "add_layernorm";
  const float* xa = f32(op, "a", a, {-1, -1});
  const std::int64_t R = a.dim(0), D = a.dim(1);
  expect_distinct(op, "out", out, "sum", sum);
  cpu::add_layernorm_forward(f32(op, "sum", sum, {R, D}), f32(op, "out", out, {R, D}), f32(op, "mean", mean, {R}),
                             f32(op, "rstd", rstd, {R}), xa, f32(op, "b", b, {R, D}), f32(op, "gamma", gamma, {D}),
                             f32(op, "beta", beta, {D}), R, D, kLayerNormEps);
}

void CpuBackend::layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out,
                                    TensorView in, TensorView mean, TensorView rstd, TensorView gamma) {
  const char* op = "layernorm_backward";
  const float* x = f32(op, "in", in, {-1, -1});
  const std::int64_t R = in.dim(0), D = in.dim(1);
  float* dx = f32(op, "d_in", d_in, {R, D});
  const float* dy = f32(op, "d_out", d_out, {R, D});
  // d_out is read again for the parameter gradients while d_in is written.
  expect_distinct(op, "d_in", d_in, "d_out", d_out);
  cpu::layernorm_backward(dx, f32(op, "d_gamma", d_gamma, {D}), f32(op, "d_beta", d_beta, {D}), dy, x,
                          f32(op, "mean", mean, {R}), f32(op, "rstd", rstd, {R}), f32(op, "gamma", gamma, {D}), R, D);
}

void CpuBackend::add(TensorView out, TensorView a, TensorView b) {
  const char* op = "add";
  for (const auto& [name, t] : {std::pair{"out", &out}, std::pair{"a", &a}, std::pair{"b", &b}}) {
    if (t->empty()) refuse(op, std::string(name) + " is empty");
    expect_dtype(op, name, *t, DType::f32);
  }
  expect_same_shape(op, "a", a, "b", b);
  expect_same_shape(op, "out", out, "a", a);
  cpu::add_forward(out.as<float>(), a.as<float>(), b.as<float>(), out.numel());
}

float* CpuBackend::gemm_scratch(std::size_t floats) {
  if (gemm_scratch_.size() < floats) gemm_scratch_.resize(floats);
  return floats ? gemm_scratch_.data() : nullptr;
}

// ---- attention --------------------------------------------------------------

float* CpuBackend::attention_scratch(std::int64_t T, std::int64_t head_dim, int threads) {
  const std::size_t need = cpu::attention_scratch_floats(T, head_dim) * static_cast<std::size_t>(threads);
  if (attention_scratch_.size() < need) attention_scratch_.resize(need);
  return attention_scratch_.data();
}

namespace {
struct AttentionShape {
  std::int64_t B, T, D, H;
};
AttentionShape attention_shape(const char* op, const TensorView& qkv, int heads) {
  f32(op, "qkv", qkv, {-1, -1, -1});
  const std::int64_t B = qkv.dim(0), T = qkv.dim(1), D3 = qkv.dim(2);
  if (D3 % 3 != 0) refuse(op, "qkv " + qkv.describe() + ": last dim is not 3·D");
  const std::int64_t D = D3 / 3;
  if (heads <= 0 || D % heads != 0)
    refuse(op, "dim " + std::to_string(D) + " of qkv " + qkv.describe() + " is not divisible by " +
                   std::to_string(heads) + " heads");
  return {B, T, D, heads};
}
}  // namespace

void CpuBackend::attention(TensorView out, TensorView lse, TensorView qkv, int heads) {
  const char* op = "attention";
  const auto [B, T, D, H] = attention_shape(op, qkv, heads);
  float* o = f32(op, "out", out, {B, T, D});
  float* l = f32(op, "lse", lse, {B, H, T});
  const int threads = omp_get_max_threads();
  cpu::attention_forward(o, l, qkv.as<float>(), attention_scratch(T, D / H, threads), threads, B, T, D, H);
}

void CpuBackend::attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out, TensorView lse,
                                    int heads) {
  const char* op = "attention_backward";
  const auto [B, T, D, H] = attention_shape(op, qkv, heads);
  float* dqkv = f32(op, "d_qkv", d_qkv, {B, T, 3 * D});
  expect_distinct(op, "d_qkv", d_qkv, "qkv", qkv);
  const int threads = omp_get_max_threads();
  cpu::attention_backward(dqkv, f32(op, "d_out", d_out, {B, T, D}), qkv.as<float>(), f32(op, "out", out, {B, T, D}),
                          f32(op, "lse", lse, {B, H, T}), attention_scratch(T, D / H, threads), threads, B, T, D, H);
}

// ---- pooling and loss -------------------------------------------------------

void CpuBackend::pool(TensorView pooled, TensorView x, Pooling mode) {
  const char* op = "pool";
  const float* in = f32(op, "x", x, {-1, -1, -1});
  const std::int64_t B = x.dim(0), T = x.dim(1), D = x.dim(2);
  cpu::pool_forward(f32(op, "pooled", pooled, {B, D}), in, B, T, D, pool_kind(mode));
}

void CpuBackend::pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) {
  const char* op = "pool_backward";
  float* dx = f32(op, "d_x", d_x, {-1, -1, -1});
  const std::int64_t B = d_x.dim(0), T = d_x.dim(1), D = d_x.dim(2);
  cpu::pool_backward(dx, f32(op, "d_pooled", d_pooled, {B, D}), B, T, D, pool_kind(mode));
}

void CpuBackend::cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                               float grad_scale) {
  const char* op = "cross_entropy";
  const float* z = f32(op, "logits", logits, {-1, -1});
  const std::int64_t B = logits.dim(0), K = logits.dim(1);
  cpu::cross_entropy_forward_backward(f32(op, "losses", losses, {B}), optional_f32(op, "d_logits", d_logits, {B, K}), z,
                                      f32(op, "targets", targets, {B, K}), B, K, grad_scale);
}

// ---- optimizer --------------------------------------------------------------

void CpuBackend::grad_norm_squared(TensorView out, TensorView grads) {
  const char* op = "grad_norm_squared";
  if (grads.empty()) refuse(op, "grads is empty");
  expect_dtype(op, "grads", grads, DType::f32);
  float* o = f32(op, "out", out, {1});
  *o = static_cast<float>(cpu::grad_norm_squared(grads.as<float>(), grads.numel()));
}

void CpuBackend::adamw(TensorView params, TensorView grads, TensorView m, TensorView v,
                       std::span<const ParamSegment> segments, const AdamWHyper& hyper, TensorView grad_norm_sq) {
  const char* op = "adamw";
  float* p = f32(op, "params", params, {-1});
  const std::int64_t n = params.dim(0);
  const float* g = f32(op, "grads", grads, {n});
  float* m1 = f32(op, "m", m, {n});
  float* m2 = f32(op, "v", v, {n});
  if (hyper.step < 1) refuse(op, "step " + std::to_string(hyper.step) + " (1-based) must be >= 1");
  float scale = 1.f;
  if (hyper.max_grad_norm > 0.f) {
    const float* norm_sq = f32(op, "grad_norm_sq", grad_norm_sq, {1});
    scale = cpu::clip_scale(*norm_sq, hyper.max_grad_norm);
  }
  for (const ParamSegment& s : segments) {
    if (s.offset < 0 || s.numel < 0 || s.offset + s.numel > n)
      refuse(op, "segment [" + std::to_string(s.offset) + ", +" + std::to_string(s.numel) + ") outside params " +
                     params.describe());
  }
  cpu::AdamWScalars scalars{hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, 0.f, hyper.step, scale};
  for (const ParamSegment& s : segments) {
    scalars.weight_decay = s.decay ? hyper.weight_decay : 0.f;
    cpu::adamw_update(p + s.offset, g + s.offset, m1 + s.offset, m2 + s.offset, s.numel, scalars);
  }
}

void CpuBackend::weight_ema(TensorView ema, TensorView params, float decay) {
  const char* op = "weight_ema";
  float* e = f32(op, "ema", ema, {-1});
  const std::int64_t n = ema.dim(0);
  if (!(decay >= 0.f && decay <= 1.f)) refuse(op, "decay " + std::to_string(decay) + " is outside [0, 1]");
  cpu::weight_ema_update(e, f32(op, "params", params, {n}), n, decay);
}

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace vitscale
