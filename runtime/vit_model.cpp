#include "runtime/vit_model.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "runtime/rng.h"

namespace vitscale {

std::string MemoryPlan::format() const {
  auto mib = [](std::size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  char line[160];
  std::ostringstream s;
  s << "memory plan";
  if (world > 1 || zero_stage > 0)
    s << " of rank " << rank << " of " << world << " at ZeRO stage " << zero_stage;
  s << (activation_checkpointing ? ", activation checkpointing" : "") << " (one allocation per arena):\n";
  auto row = [&](const char* name, std::size_t b) {
    std::snprintf(line, sizeof line, "  %-16s %12zu bytes  %10.2f MiB\n", name, b, mib(b));
    s << line;
  };
  row("parameters", params);
  row("gradients", grads);
  if (compute_params) row("bf16 weights", compute_params);
  row("optimizer", optimizer);
  if (ema) row("EMA weights", ema);
  row(activation_checkpointing ? "activations (ckpt)" : "activations", activations);
  row("peak (total)", total());
  return s.str();
}

namespace {

// Replaces dimension 0 of a view planned at the maximum batch.
TensorView with_batch(TensorView v, int batch) {
  if (!v.empty() || v.rank > 0) v.shape[0] = batch;
  return v;
}

}  // namespace

ViTModel::ViTModel(const ViTConfig& config, Backend& backend, ModelShape shape, ImageNorm norm)
    : config_(config), backend_(backend), shape_(shape), norm_(norm), table_(config) {
  if (shape_.source_image_size == 0) shape_.source_image_size = config_.image_size;
  if (shape_.micro_batch <= 0)
    throw std::invalid_argument("micro batch must be positive, got " + std::to_string(shape_.micro_batch));
  if (shape_.source_image_size <= 0)
    throw std::invalid_argument("source image size must be positive, got " + std::to_string(shape_.source_image_size));
  if (norm_.channels != config_.channels)
    throw std::invalid_argument("image normalisation has " + std::to_string(norm_.channels) +
                                " channels but the model takes " + std::to_string(config_.channels));

  const std::int64_t n = table_.total_numel();
  groups_ = table_.weight_groups();
  if (shape_.resident_params)
    params_arena_ = make_arena(backend_, "parameters", [&](ArenaCarver& c) { params_ = c.take(DType::f32, {n}); });
  if (shape_.resident_gradients)
    grads_arena_ = make_arena(backend_, "gradients", [&](ArenaCarver& c) { grads_ = c.take(DType::f32, {n}); });
  if (backend_.activation_dtype() == DType::f32 || !shape_.resident_params) {
    compute_params_ = params_;  // ZeRO-3: the provider hands out compute weights per group
  } else {
    compute_arena_ = make_arena(backend_, "compute weights",
                                [&](ArenaCarver& c) { compute_params_ = c.take(backend_.activation_dtype(), {n}); });
  }
  Activations planned;
  activations_arena_ =
      make_arena(backend_, "activations", [&](ArenaCarver& c) { layout_activations(c, shape_.micro_batch, planned); });

  plan_.params = params_arena_.buffer.bytes();
  plan_.grads = grads_arena_.buffer.bytes();
  plan_.compute_params = compute_arena_.buffer.bytes();
  plan_.activations = activations_arena_.buffer.bytes();
  plan_.activation_checkpointing = shape_.activation_checkpointing;
  if (!params_.empty()) backend_.fill_zero(params_);
  if (!grads_.empty()) backend_.fill_zero(grads_);
}

void ViTModel::layout_activations(ArenaCarver& c, int B, Activations& a) const {
  const std::int64_t T = config_.tokens(), D = config_.dim, F = config_.mlp_dim, K = config_.num_classes,
                     H = config_.heads, Np = config_.num_patches(), S = shape_.source_image_size;
  const DType act = backend_.activation_dtype();
  a.images = c.take(DType::u8, {B, config_.channels, S, S});
  a.targets = c.take(DType::f32, {B, K});
  a.patches = c.take(act, {B, Np, config_.patch_dim()});
  a.patch_emb = c.take(act, {B, Np, D});
  a.blocks.resize(static_cast<std::size_t>(config_.depth));
  const bool shared = shape_.activation_checkpointing;
  for (std::size_t l = 0; l < a.blocks.size(); ++l) {
    BlockActivations& b = a.blocks[l];
    b.x = c.take(act, {B, T, D});
    if (shared && l > 0) {  // the working set of block 0, shared by every block
      const TensorView x = b.x;
      b = a.blocks[0];
      b.x = x;
      continue;
    }
    b.ln1 = c.take(act, {B, T, D});
    b.ln1_mean = c.take(DType::f32, {B, T});
    b.ln1_rstd = c.take(DType::f32, {B, T});
    b.qkv = c.take(act, {B, T, 3 * D});
    b.attn = c.take(act, {B, T, D});
    b.attn_lse = c.take(DType::f32, {B, H, T});
    b.mid = c.take(act, {B, T, D});
    b.ln2 = c.take(act, {B, T, D});
    b.ln2_mean = c.take(DType::f32, {B, T});
    b.ln2_rstd = c.take(DType::f32, {B, T});
    b.fc1_pre = c.take(act, {B, T, F});
    b.fc1_act = c.take(act, {B, T, F});
  }
  a.x_final = c.take(act, {B, T, D});
  a.pooled = c.take(act, {B, D});
  a.lnf = c.take(act, {B, D});
  a.lnf_mean = c.take(DType::f32, {B});
  a.lnf_rstd = c.take(DType::f32, {B});
  a.logits = c.take(act, {B, K});
  a.losses = c.take(DType::f32, {B});
  a.logits_f32 = c.take(DType::f32, {B, K});
  a.branch_out = c.take(act, {B, T, D});
  a.d_logits = c.take(act, {B, K});
  a.d_lnf = c.take(act, {B, D});
  a.d_pooled = c.take(act, {B, D});
  a.d_x = c.take(act, {B, T, D});
  a.d_ln = c.take(act, {B, T, D});
  a.d_attn = c.take(act, {B, T, D});
  a.d_qkv = c.take(act, {B, T, 3 * D});
  a.d_fc1 = c.take(act, {B, T, F});
  a.d_patch_emb = c.take(act, {B, Np, D});
}

Activations ViTModel::activations_for(int batch) const {
  Activations a;
  ArenaCarver c(activations_arena_.buffer.get());
  layout_activations(c, shape_.micro_batch, a);
  if (batch == shape_.micro_batch) return a;
  for (TensorView* v :
       {&a.images,   &a.targets, &a.patches, &a.patch_emb,  &a.x_final,    &a.pooled,     &a.lnf,   &a.lnf_mean,
        &a.lnf_rstd, &a.logits,  &a.losses,  &a.logits_f32, &a.branch_out, &a.d_logits,   &a.d_lnf, &a.d_pooled,
        &a.d_x,      &a.d_ln,    &a.d_attn,  &a.d_qkv,      &a.d_fc1,      &a.d_patch_emb})
    *v = with_batch(*v, batch);
  for (auto& b : a.blocks)
    for (TensorView* v : {&b.x, &b.ln1, &b.ln1_mean, &b.ln1_rstd, &b.qkv, &b.attn, &b.attn_lse, &b.mid, &b.ln2,
                          &b.ln2_mean, &b.ln2_rstd, &b.fc1_pre, &b.fc1_act})
      *v = with_batch(*v, batch);
  return a;
}

namespace {

// A parameter's view with the given dims (its numel must match).
TensorView flat_view(TensorView flat, const ParamInfo& p, std::initializer_list<std::int64_t> dims) {
  return flat.slice_flat(p.offset, p.numel).reshaped(dims);
}

// A parameter's view inside its weight group's buffer, which starts at flat
// offset `group_begin`.
struct GroupWeights {
  const std::vector<ParamInfo>& params;
  TensorView weights;  // (group count) compute dtype
  std::int64_t group_begin;
  TensorView operator()(int idx, std::initializer_list<std::int64_t> dims) const {
    if (idx < 0) return TensorView{};
    const ParamInfo& p = params[static_cast<std::size_t>(idx)];
    return weights.slice_flat(p.offset - group_begin, p.numel).reshaped(dims);
  }
};

}  // namespace

TensorView ViTModel::param(int index) const {
  const auto& p = table_.params().at(static_cast<std::size_t>(index));
  return params_.slice_flat(p.offset, p.numel);
}

TensorView ViTModel::grad(int index) const {
  const auto& p = table_.params().at(static_cast<std::size_t>(index));
  return grads_.slice_flat(p.offset, p.numel);
}

void ViTModel::init_parameters(std::uint64_t seed) {
  Rng rng = Rng::from_seed(seed);
  std::vector<float> host(static_cast<std::size_t>(table_.total_numel()), 0.f);
  const std::vector<ParamInfo>& ps = table_.params();
  auto fill = [&](int index, auto&& draw) {
    if (index < 0) return;
    const auto& p = ps[static_cast<std::size_t>(index)];
    for (std::int64_t i = 0; i < p.numel; ++i)
      host[static_cast<std::size_t>(p.offset + i)] = static_cast<float>(draw());
  };
  auto trunc02 = [&] { return rng.truncated_normal(0.02, -2.0, 2.0); };
  auto one = [] { return 1.0; };
  // Draw in table order so the stream of random numbers is fixed by the layout.
  fill(table_.cls_token, [&] { return rng.normal() * 1e-6; });
  fill(table_.pos_embed, trunc02);
  {
    // nn.Conv2d's default: kaiming_uniform(a=√5) → U(±1/√fan_in) for weight and bias.
    const double bound = 1.0 / std::sqrt(static_cast<double>(config_.patch_dim()));
    auto uniform = [&] { return (2.0 * rng.uniform_double() - 1.0) * bound; };
    fill(table_.patch_w, uniform);
    fill(table_.patch_b, uniform);
  }
  for (const auto& b : table_.blocks) {
    fill(b.norm1_w, one);
    fill(b.qkv_w, trunc02);
    fill(b.proj_w, trunc02);
    fill(b.norm2_w, one);
    fill(b.fc1_w, trunc02);
    fill(b.fc2_w, trunc02);
  }
  fill(table_.norm_w, one);
  fill(table_.head_w, trunc02);
  write_params(host);
}

void ViTModel::read_params(std::span<float> host) const {
  if (static_cast<std::int64_t>(host.size()) != table_.total_numel())
    throw std::invalid_argument("read_params: host buffer has " + std::to_string(host.size()) + " floats, model has " +
                                std::to_string(table_.total_numel()));
  if (!shape_.resident_params) {
    if (!provider_) throw std::logic_error("read_params: parameters are sharded and no provider is set");
    return provider_->read_full(host);
  }
  if (arrival_) arrival_->wait_all();
  backend_.copy_to_host(host.data(), params_.data, params_.bytes());
}

TensorView ViTModel::complete_params() const {
  if (arrival_) arrival_->wait_all();
  return params_;
}

TensorView ViTModel::acquire(int group, ParamProvider::Pass pass) {
  const ParamTable::Range& r = groups_[static_cast<std::size_t>(group)];
  if (shape_.resident_params) {
    if (arrival_) arrival_->wait_group(group);
    return compute_params_.slice_flat(r.begin, r.count);
  }
  if (!provider_) throw std::logic_error("ViTModel: parameters are sharded and no provider is set");
  return provider_->acquire(group, pass);
}

void ViTModel::release(int group) {
  if (!shape_.resident_params) provider_->release(group);
}

void ViTModel::forward_weights_only() {
  for (int g = 0; g < static_cast<int>(groups_.size()); ++g) {
    acquire(g, ParamProvider::Pass::forward);
    release(g);
  }
}

void ViTModel::write_params(std::span<const float> host) {
  if (static_cast<std::int64_t>(host.size()) != table_.total_numel())
    throw std::invalid_argument("write_params: host buffer has " + std::to_string(host.size()) + " floats, model has " +
                                std::to_string(table_.total_numel()));
  if (!shape_.resident_params) {
    if (!provider_) throw std::logic_error("write_params: parameters are sharded and no provider is set");
    return provider_->write_full(host);
  }
  if (arrival_) arrival_->wait_all();  // a gather still in flight would overwrite what is written here
  backend_.copy_to_device(params_.data, host.data(), params_.bytes());
  backend_.synchronize();
  sync_compute_params();
}

void ViTModel::sync_compute_params() {
  if (compute_params_.data != params_.data) backend_.cast(compute_params_, params_);
}

void ViTModel::sync_compute_group(int group) {
  if (compute_params_.data == params_.data) return;
  const ParamTable::Range& r = groups_.at(static_cast<std::size_t>(group));
  backend_.cast(compute_params_.slice_flat(r.begin, r.count), params_.slice_flat(r.begin, r.count));
}

void ViTModel::zero_grads() {
  if (!grads_.empty()) backend_.fill_zero(grads_);  // a ZeRO window zeroes each slot as it hands it out
}

void ViTModel::upload_batch(const std::uint8_t* images, const float* targets, int batch) {
  if (batch < 1 || batch > shape_.micro_batch)
    throw std::invalid_argument("upload_batch: batch " + std::to_string(batch) + " is outside 1.." +
                                std::to_string(shape_.micro_batch));
  batch_ = batch;
  const Activations a = activations_for(batch);
  backend_.copy_to_device(a.images.data, images, a.images.bytes());
  backend_.copy_to_device(a.targets.data, targets, a.targets.bytes());
}

void ViTModel::forward(float grad_scale) {
  if (batch_ == 0) throw std::logic_error("forward: no batch uploaded");
  const Activations a = activations_for(batch_);
  Backend& be = backend_;
  const ViTConfig& c = config_;
  const std::int64_t B = batch_, T = c.tokens(), D = c.dim, K = c.num_classes;
  const auto& ps = table_.params();
  const int G = static_cast<int>(groups_.size());
  using Pass = ParamProvider::Pass;

  // Patch embedding: uint8 images → normalised patches → a Linear over C·P·P.
  {
    const GroupWeights w{ps, acquire(0, Pass::forward), groups_[0].begin};
    be.image_to_patches(a.patches, a.images, norm_, c.patch_size, c.image_size);
    be.linear(a.patch_emb.reshaped({B * c.num_patches(), D}),
              a.patches.reshaped({B * c.num_patches(), c.patch_dim()}), w(table_.patch_w, {D, c.patch_dim()}),
              w(table_.patch_b, {D}));
    be.embed_tokens(a.blocks[0].x, a.patch_emb, w(table_.cls_token, {D}), w(table_.pos_embed, {T, D}));
    release(0);
  }

  for (int l = 0; l < c.depth; ++l) {
    forward_block(a, l, l == 0, acquire(l + 1, Pass::forward));
    release(l + 1);
  }
  be.add(a.x_final, a.blocks.back().mid, a.branch_out);

  // Head: pool first, then the final norm. For cls pooling this equals timm's
  // norm-all-tokens-then-take-cls (layernorm is per token) at 1/T of the cost;
  // for mean pooling it is timm's fc_norm.
  const GroupWeights w{ps, acquire(G - 1, Pass::forward), groups_[static_cast<std::size_t>(G - 1)].begin};
  be.pool(a.pooled, a.x_final, c.pooling);
  be.layernorm(a.lnf, a.lnf_mean, a.lnf_rstd, a.pooled, w(table_.norm_w, {D}), w(table_.norm_b, {D}));
  be.linear(a.logits, a.lnf, w(table_.head_w, {K, D}), w(table_.head_b, {K}));
  release(G - 1);
  be.cross_entropy(a.losses, a.d_logits, a.logits, a.targets, grad_scale);
}

void ViTModel::forward_block(const Activations& a, int l, bool from_stored_input, TensorView weights) {
  Backend& be = backend_;
  const ViTConfig& c = config_;
  const std::int64_t D = c.dim, F = c.mlp_dim, R = static_cast<std::int64_t>(batch_) * c.tokens();  // R: token rows
  const GroupWeights w{table_.params(), weights, groups_[static_cast<std::size_t>(l + 1)].begin};
  const BlockActivations& b = a.blocks[static_cast<std::size_t>(l)];
  const BlockParamIndex& p = table_.blocks[static_cast<std::size_t>(l)];
  // ln1: block 0 (and every recomputed block) normalises its stored input;
  // otherwise the previous block's residual add (x_l = mid_{l-1} + fc2_{l-1})
  // is fused into this block's first layernorm, which also stores x_l. Both
  // normalise the same values with the same row kernel.
  if (from_stored_input) {
    be.layernorm(b.ln1.reshaped({R, D}), b.ln1_mean.reshaped({R}), b.ln1_rstd.reshaped({R}), b.x.reshaped({R, D}),
                 w(p.norm1_w, {D}), w(p.norm1_b, {D}));
  } else {
    const BlockActivations& prev = a.blocks[static_cast<std::size_t>(l - 1)];
    be.add_layernorm(b.x.reshaped({R, D}), b.ln1.reshaped({R, D}), b.ln1_mean.reshaped({R}), b.ln1_rstd.reshaped({R}),
                     prev.mid.reshaped({R, D}), a.branch_out.reshaped({R, D}), w(p.norm1_w, {D}), w(p.norm1_b, {D}));
  }
  be.linear(b.qkv.reshaped({R, 3 * D}), b.ln1.reshaped({R, D}), w(p.qkv_w, {3 * D, D}), w(p.qkv_b, {3 * D}));
  be.attention(b.attn, b.attn_lse, b.qkv, c.heads);
  be.linear(a.branch_out.reshaped({R, D}), b.attn.reshaped({R, D}), w(p.proj_w, {D, D}), w(p.proj_b, {D}));
  be.add_layernorm(b.mid.reshaped({R, D}), b.ln2.reshaped({R, D}), b.ln2_mean.reshaped({R}), b.ln2_rstd.reshaped({R}),
                   b.x.reshaped({R, D}), a.branch_out.reshaped({R, D}), w(p.norm2_w, {D}), w(p.norm2_b, {D}));
  be.linear_gelu(b.fc1_pre.reshaped({R, F}), b.fc1_act.reshaped({R, F}), b.ln2.reshaped({R, D}), w(p.fc1_w, {F, D}),
                 w(p.fc1_b, {F}));
  be.linear(a.branch_out.reshaped({R, D}), b.fc1_act.reshaped({R, F}), w(p.fc2_w, {D, F}), w(p.fc2_b, {D}));
}

void ViTModel::backward(GradReadyListener* listener) {
  if (batch_ == 0) throw std::logic_error("backward: no forward pass to go back through");
  const Activations a = activations_for(batch_);
  Backend& be = backend_;
  const ViTConfig& c = config_;
  const std::int64_t B = batch_, T = c.tokens(), D = c.dim, F = c.mlp_dim, K = c.num_classes;
  const std::int64_t R = B * T;
  const auto& ps = table_.params();
  const int G = static_cast<int>(groups_.size());
  using Pass = ParamProvider::Pass;
  auto g = [&](int idx, std::initializer_list<std::int64_t> dims) {
    if (idx < 0) return TensorView{};
    if (listener)
      if (TensorView v = listener->gradient_of(idx); !v.empty()) return v.reshaped(dims);
    if (grads_.empty()) throw std::logic_error("backward: no gradient buffer and no listener window");
    return flat_view(grads_, ps[static_cast<std::size_t>(idx)], dims);
  };
  auto ready_from = [&](int idx) {
    if (listener) listener->grads_ready_from(ps[static_cast<std::size_t>(idx)].offset);
  };

  // Head and final norm.
  {
    const GroupWeights w{ps, acquire(G - 1, Pass::backward), groups_[static_cast<std::size_t>(G - 1)].begin};
    be.linear_backward(a.d_lnf, g(table_.head_w, {K, D}), g(table_.head_b, {K}), a.d_logits, a.lnf,
                       w(table_.head_w, {K, D}));
    ready_from(table_.head_w);
    be.fill_zero(a.d_pooled);  // layernorm_backward accumulates into d_in
    be.layernorm_backward(a.d_pooled, g(table_.norm_w, {D}), g(table_.norm_b, {D}), a.d_lnf, a.pooled, a.lnf_mean,
                          a.lnf_rstd, w(table_.norm_w, {D}));
    release(G - 1);
    ready_from(table_.norm_w);
  }
  be.pool_backward(a.d_x, a.d_pooled, c.pooling);

  // Blocks, last to first. d_x holds the residual stream's gradient: it is at
  // once d(fc2 out), d(mid) (before ln2's share is added), and, after the
  // layernorm backwards accumulate into it, d(x_l).
  // Under activation checkpointing the working set holds the last block's
  // activations (forward just wrote them); every other block is recomputed.
  for (int l = c.depth - 1; l >= 0; --l) {
    const TensorView weights = acquire(l + 1, Pass::backward);
    const GroupWeights w{ps, weights, groups_[static_cast<std::size_t>(l + 1)].begin};
    if (shape_.activation_checkpointing && l < c.depth - 1) forward_block(a, l, true, weights);
    const BlockActivations& b = a.blocks[static_cast<std::size_t>(l)];
    const BlockParamIndex& p = table_.blocks[static_cast<std::size_t>(l)];
    be.mlp_backward({.d_in = a.d_ln.reshaped({R, D}),
                     .d_fc1_weight = g(p.fc1_w, {F, D}),
                     .d_fc1_bias = g(p.fc1_b, {F}),
                     .d_fc2_weight = g(p.fc2_w, {D, F}),
                     .d_fc2_bias = g(p.fc2_b, {D}),
                     .d_hidden = a.d_fc1.reshaped({R, F}),
                     .d_out = a.d_x.reshaped({R, D}),
                     .in = b.ln2.reshaped({R, D}),
                     .pre = b.fc1_pre.reshaped({R, F}),
                     .act = b.fc1_act.reshaped({R, F}),
                     .fc1_weight = w(p.fc1_w, {F, D}),
                     .fc2_weight = w(p.fc2_w, {D, F})});
    be.layernorm_backward(a.d_x.reshaped({R, D}), g(p.norm2_w, {D}), g(p.norm2_b, {D}), a.d_ln.reshaped({R, D}),
                          b.mid.reshaped({R, D}), b.ln2_mean.reshaped({R}), b.ln2_rstd.reshaped({R}),
                          w(p.norm2_w, {D}));
    be.linear_backward(a.d_attn.reshaped({R, D}), g(p.proj_w, {D, D}), g(p.proj_b, {D}), a.d_x.reshaped({R, D}),
                       b.attn.reshaped({R, D}), w(p.proj_w, {D, D}));
    be.attention_backward(a.d_qkv, a.d_attn, b.qkv, b.attn, b.attn_lse, c.heads);
    be.linear_backward(a.d_ln.reshaped({R, D}), g(p.qkv_w, {3 * D, D}), g(p.qkv_b, {3 * D}),
                       a.d_qkv.reshaped({R, 3 * D}), b.ln1.reshaped({R, D}), w(p.qkv_w, {3 * D, D}));
    be.layernorm_backward(a.d_x.reshaped({R, D}), g(p.norm1_w, {D}), g(p.norm1_b, {D}), a.d_ln.reshaped({R, D}),
                          b.x.reshaped({R, D}), b.ln1_mean.reshaped({R}), b.ln1_rstd.reshaped({R}), w(p.norm1_w, {D}));
    release(l + 1);
    ready_from(p.norm1_w);
  }

  // Embedding: cls/pos gradients, then the patch Linear (its input gradient is
  // not needed: the images are data).
  const GroupWeights w{ps, acquire(0, Pass::backward), groups_[0].begin};
  be.embed_tokens_backward(a.d_patch_emb, g(table_.cls_token, {D}), g(table_.pos_embed, {T, D}), a.d_x);
  be.linear_backward(TensorView{}, g(table_.patch_w, {D, c.patch_dim()}), g(table_.patch_b, {D}),
                     a.d_patch_emb.reshaped({B * c.num_patches(), D}),
                     a.patches.reshaped({B * c.num_patches(), c.patch_dim()}), w(table_.patch_w, {D, c.patch_dim()}));
  release(0);
  if (listener) listener->grads_ready_from(0);
}

std::vector<float> ViTModel::read_losses() const {
  const Activations a = activations_for(batch_);
  std::vector<float> out(static_cast<std::size_t>(batch_));
  backend_.copy_to_host(out.data(), a.losses.data, a.losses.bytes());
  return out;
}

std::vector<float> ViTModel::read_logits() const {
  const Activations a = activations_for(batch_);
  TensorView src = a.logits;
  if (src.dtype != DType::f32) {
    backend_.cast(a.logits_f32, a.logits);
    src = a.logits_f32;
  }
  std::vector<float> out(static_cast<std::size_t>(src.numel()));
  backend_.copy_to_host(out.data(), src.data, src.bytes());
  return out;
}

}  // namespace vitscale
