#include "tools/torch_ref/torch_vit.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR < 2
#include <torch/csrc/autograd/profiler_legacy.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>

#include "runtime/safetensors.h"
#include "tools/torch_ref/timm_attention.h"

namespace vitscale::torch_ref {
namespace {

namespace F = torch::nn::functional;

constexpr double kLayerNormEps = 1e-6;  // timm's ViT

// torch.autocast(device_type, dtype=bf16) as a scope: the forward's matmuls
// run in bf16, the parameters stay fp32. Restores the previous state on exit.
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(device_);
    previous_dtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
#else
    const bool cuda = device_ == c10::DeviceType::CUDA;
    was_enabled_ = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    previous_dtype_ = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    if (cuda) {
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    } else {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    // The bf16 weight copies are cached for the scope, as in torch.autocast.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(device_, was_enabled_);
    at::autocast::set_autocast_dtype(device_, previous_dtype_);
#else
    if (device_ == c10::DeviceType::CUDA) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(previous_dtype_);
    }
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

}  // namespace

struct TorchViT::Impl {
  Impl(const ViTConfig& c, const ImageNorm& n, TorchOptions o)
      : config(c), norm(n), options(std::move(o)), table(c), device(options.device) {
    if (norm.channels != config.channels)
      throw std::invalid_argument("TorchViT: image normalisation has " + std::to_string(norm.channels) +
                                  " channels but the model takes " + std::to_string(config.channels));
    for (const ParamInfo& p : table.params())
      params.push_back(torch::zeros(p.shape, torch::dtype(torch::kFloat).device(device)).requires_grad_(true));
    const auto C = config.channels;
    // clone: on the CPU .to(device) would alias the ImageNorm arrays.
    mean = torch::from_blob(norm.mean, {1, C, 1, 1}, torch::kFloat).clone().to(device);
    std_dev = torch::from_blob(norm.std, {1, C, 1, 1}, torch::kFloat).clone().to(device);
  }

  const torch::Tensor& param(int index) const { return params.at(static_cast<std::size_t>(index)); }

  // The timm forward: logits (B, K) from normalised images (B, C, I, I).
  torch::Tensor logits(const torch::Tensor& x_img) const {
    const ViTConfig& c = config;
    const std::int64_t B = x_img.size(0), D = c.dim, H = c.heads;
    // Patch embedding: Conv2d(C, D, P, stride P) → (B, D, g, g) → (B, Np, D).
    torch::Tensor x = torch::conv2d(x_img, param(table.patch_w), param(table.patch_b), c.patch_size);
    x = x.flatten(2).transpose(1, 2);
    if (c.has_cls_token()) x = torch::cat({param(table.cls_token).expand({B, -1, -1}), x}, 1);
    x = x + param(table.pos_embed);  // (B, T, D)
    for (const BlockParamIndex& p : table.blocks) {
      torch::Tensor h = torch::layer_norm(x, {D}, param(p.norm1_w), param(p.norm1_b), kLayerNormEps);
      // Attention as timm computes it (timm_attention.h): (B, T, D).
      const torch::Tensor o = timm_attention(torch::linear(h, param(p.qkv_w), param(p.qkv_b)), H, options.fused_attention);
      x = x + torch::linear(o, param(p.proj_w), param(p.proj_b));
      // MLP.
      h = torch::layer_norm(x, {D}, param(p.norm2_w), param(p.norm2_b), kLayerNormEps);
      h = torch::gelu(torch::linear(h, param(p.fc1_w), param(p.fc1_b)));  // exact (erf) GELU
      x = x + torch::linear(h, param(p.fc2_w), param(p.fc2_b));
    }
    torch::Tensor pooled;
    if (c.has_cls_token()) {
      // timm: norm over every token, then take the class token.
      x = torch::layer_norm(x, {D}, param(table.norm_w), param(table.norm_b), kLayerNormEps);
      pooled = x.select(1, 0);
    } else {
      pooled = torch::layer_norm(x.mean(1), {D}, param(table.norm_w), param(table.norm_b), kLayerNormEps);
    }
    return torch::linear(pooled, param(table.head_w), param(table.head_b));
  }

  // uint8 (B, C, S, S) → float → bilinear resize to I (when S != I) → (x/255 - mean) / std.
  torch::Tensor preprocess(std::span<const std::uint8_t> images, int batch) const {
    const std::int64_t C = config.channels, B = batch;
    if (batch < 1 || images.empty() || images.size() % static_cast<std::size_t>(B * C) != 0)
      throw std::invalid_argument("TorchViT::forward: " + std::to_string(images.size()) + " image bytes do not hold " +
                                  std::to_string(batch) + " images of " + std::to_string(C) + " channels");
    const auto S = static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(images.size() / (B * C)))));
    if (S * S * B * C != static_cast<std::int64_t>(images.size()))
      throw std::invalid_argument("TorchViT::forward: images are not square (" + std::to_string(images.size()) +
                                  " bytes for " + std::to_string(batch) + " images)");
    // from_blob only reads here (.to copies), hence the const_cast.
    torch::Tensor x = torch::from_blob(const_cast<std::uint8_t*>(images.data()), {B, C, S, S}, torch::kUInt8)
                          .to(device)
                          .to(torch::kFloat);
    if (S != config.image_size)
      x = F::interpolate(x, F::InterpolateFuncOptions()
                                .size(std::vector<std::int64_t>{config.image_size, config.image_size})
                                .mode(torch::kBilinear)
                                .align_corners(false));
    return (x / 255.0 - mean) / std_dev;
  }

  torch::Tensor targets_tensor(std::span<const float> targets, int batch) const {
    const std::int64_t K = config.num_classes;
    if (static_cast<std::int64_t>(targets.size()) != batch * K)
      throw std::invalid_argument("TorchViT::forward: " + std::to_string(targets.size()) + " target values for " +
                                  std::to_string(batch) + " images of " + std::to_string(K) + " classes");
    // clone: autograd keeps the targets for backward(), which may outlive the caller's buffer.
    return torch::from_blob(const_cast<float*>(targets.data()), {batch, K}, torch::kFloat).clone().to(device);
  }

  // Returns (mean loss, logits); keeps the graph in `loss` when train.
  std::pair<torch::Tensor, torch::Tensor> run(std::span<const std::uint8_t> images, std::span<const float> targets,
                                              int batch, bool train) {
    std::optional<torch::NoGradGuard> no_grad;
    if (!train) no_grad.emplace();
    const torch::Tensor t = targets_tensor(targets, batch);
    torch::Tensor logits_out;
    {
      const AutocastScope autocast(options.bf16_autocast, device.type());
      logits_out = logits(preprocess(images, batch));
    }
    // The loss in fp32 whatever the forward's precision.
    const torch::Tensor lf = logits_out.to(torch::kFloat);
    torch::Tensor l = -(t * torch::log_softmax(lf, -1)).sum(-1).mean();
    loss = train ? l : torch::Tensor();
    return {l, lf};
  }

  torch::optim::AdamW& optimizer_for(const AdamWHyper& h) {
    if (!optimizer) {
      // timm / DeepSpeed convention: decay the weight matrices only.
      std::vector<torch::Tensor> decay, no_decay;
      for (std::size_t i = 0; i < params.size(); ++i) (table.params()[i].decay ? decay : no_decay).push_back(params[i]);
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(std::move(decay), std::make_unique<torch::optim::AdamWOptions>(h.lr));
      groups.emplace_back(std::move(no_decay), std::make_unique<torch::optim::AdamWOptions>(h.lr));
      optimizer = std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(h.lr));
    }
    // Hyper-parameters may change every step (LR schedule): set them all.
    auto& groups = optimizer->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      auto& o = static_cast<torch::optim::AdamWOptions&>(groups[g].options());
      o.lr(h.lr)
          .betas(std::make_tuple(double{h.beta1}, double{h.beta2}))
          .eps(h.eps)
          .weight_decay(g == 0 ? h.weight_decay : 0.0);
    }
    return *optimizer;
  }

  ViTConfig config;
  ImageNorm norm;
  TorchOptions options;
  ParamTable table;
  torch::Device device;
  std::vector<torch::Tensor> params;               // ParamTable order, timm shapes, fp32, requires_grad
  std::vector<torch::Tensor> average;              // start_average(): the weights' moving average, same shapes
  torch::Tensor mean, std_dev;                     // (1, C, 1, 1)
  torch::Tensor loss;                              // the last training forward's, with its graph
  std::unique_ptr<torch::optim::AdamW> optimizer;  // made at the first step
  int steps = 0;
};

TorchViT::TorchViT(const ViTConfig& config, const ImageNorm& norm, TorchOptions options)
    : impl_(std::make_unique<Impl>(config, norm, std::move(options))) {}
TorchViT::~TorchViT() = default;
TorchViT::TorchViT(TorchViT&&) noexcept = default;
TorchViT& TorchViT::operator=(TorchViT&&) noexcept = default;

const ViTConfig& TorchViT::config() const { return impl_->config; }
const ParamTable& TorchViT::table() const { return impl_->table; }
std::string TorchViT::device() const { return impl_->device.str(); }

void TorchViT::load_flat(std::span<const float> flat) {
  const ParamTable& table = impl_->table;
  if (static_cast<std::int64_t>(flat.size()) != table.total_numel())
    throw std::invalid_argument("TorchViT::load_flat: " + std::to_string(flat.size()) + " floats, the model has " +
                                std::to_string(table.total_numel()));
  const torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < impl_->params.size(); ++i) {
    const ParamInfo& p = table.params()[i];
    // copy_ only reads the source, hence the const_cast.
    impl_->params[i].copy_(torch::from_blob(const_cast<float*>(flat.data() + p.offset), p.shape, torch::kFloat));
  }
}

void TorchViT::start_average() {
  const torch::NoGradGuard no_grad;
  impl_->average.clear();
  for (const torch::Tensor& p : impl_->params) impl_->average.push_back(p.detach().clone());
}

void TorchViT::update_average(float decay) {
  if (impl_->average.empty()) throw std::logic_error("TorchViT::update_average before start_average");
  const torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < impl_->params.size(); ++i) {
    torch::Tensor& e = impl_->average[i];
    e.mul_(decay);
    e.add_(impl_->params[i].detach() * (1.f - decay));
  }
}

void TorchViT::swap_average() {
  if (impl_->average.empty()) throw std::logic_error("TorchViT::swap_average before start_average");
  const torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < impl_->params.size(); ++i) {
    const torch::Tensor live = impl_->params[i].detach().clone();
    impl_->params[i].copy_(impl_->average[i]);
    impl_->average[i].copy_(live);
  }
}

std::vector<float> TorchViT::flat_params() const {
  std::vector<float> flat(static_cast<std::size_t>(impl_->table.total_numel()), 0.f);
  for (std::size_t i = 0; i < impl_->params.size(); ++i) {
    const torch::Tensor t = impl_->params[i].detach().to(torch::kCPU, torch::kFloat).contiguous();
    std::memcpy(flat.data() + impl_->table.params()[i].offset, t.data_ptr<float>(), t.numel() * sizeof(float));
  }
  return flat;
}

void TorchViT::load_safetensors(const std::string& path) {
  // vitscale's own loader's rules and messages (checkpoints' training state skipped).
  load_flat(read_flat_params(read_safetensors(path), impl_->table, path, impl_->config.describe()));
}

TorchForward TorchViT::forward(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                               bool train) {
  const auto [loss, logits] = impl_->run(images, targets, batch, train);
  const torch::Tensor host = logits.detach().to(torch::kCPU).contiguous();
  TorchForward out;
  out.loss = loss.item<float>();
  out.logits.assign(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
  return out;
}

void TorchViT::backward() {
  if (!impl_->loss.defined()) throw std::logic_error("TorchViT::backward: no training forward to go back through");
  impl_->loss.backward();
  impl_->loss = torch::Tensor();  // the graph is spent
}

std::vector<float> TorchViT::flat_grads() const {
  std::vector<float> flat(static_cast<std::size_t>(impl_->table.total_numel()), 0.f);
  for (std::size_t i = 0; i < impl_->params.size(); ++i) {
    const torch::Tensor& g = impl_->params[i].grad();
    if (!g.defined()) continue;
    const torch::Tensor t = g.to(torch::kCPU, torch::kFloat).contiguous();
    std::memcpy(flat.data() + impl_->table.params()[i].offset, t.data_ptr<float>(), t.numel() * sizeof(float));
  }
  return flat;
}

void TorchViT::zero_grads() {
  for (torch::Tensor& p : impl_->params) p.mutable_grad() = torch::Tensor();
}

std::optional<double> TorchViT::optimizer_step(const AdamWHyper& hyper) {
  if (hyper.step != impl_->steps + 1)
    throw std::logic_error("TorchViT::optimizer_step: hyper.step is " + std::to_string(hyper.step) +
                           " but torch's AdamW is at step " + std::to_string(impl_->steps + 1));
  std::optional<double> norm;
  if (hyper.max_grad_norm > 0.f) norm = torch::nn::utils::clip_grad_norm_(impl_->params, hyper.max_grad_norm);
  impl_->optimizer_for(hyper).step();
  ++impl_->steps;
  return norm;
}

float TorchViT::train_step(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                           const AdamWHyper& hyper) {
  zero_grads();
  const torch::Tensor loss = impl_->run(images, targets, batch, /*train=*/true).first;
  backward();
  optimizer_step(hyper);
  return loss.item<float>();
}

std::string TorchViT::profile_ops(std::span<const std::uint8_t> images, std::span<const float> targets, int batch,
                                  AdamWHyper hyper, int steps) {
#if TORCH_VERSION_MAJOR < 2
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
  for (int i = 0; i < steps; ++i, ++hyper.step) {
    zero_grads();
    {
      RECORD_USER_SCOPE("forward");
      impl_->run(images, targets, batch, /*train=*/true);
    }
    {
      RECORD_USER_SCOPE("backward");
      backward();
    }
    {
      RECORD_USER_SCOPE("optimizer");
      optimizer_step(hyper);
    }
  }
  const prof::thread_event_lists lists = prof::disableProfilerLegacy();
  // Ranges nest per thread (RAII scopes): a stack pairs each pop with its
  // push. Only the phases' direct children are counted (inclusive time).
  struct Row {
    long calls = 0;
    double us = 0;
  };
  std::map<std::string, Row> rows;
  double total_us = 0;
  for (const auto& events : lists) {
    std::vector<const prof::LegacyEvent*> stack;
    for (const prof::LegacyEvent& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back(&e);
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const prof::LegacyEvent* push = stack.back();
        stack.pop_back();
        const double us = push->cpuElapsedUs(e);
        if (stack.empty()) {
          if (std::string(push->name()) == "forward" || std::string(push->name()) == "backward" ||
              std::string(push->name()) == "optimizer")
            total_us += us;
        } else if (stack.size() == 1) {
          Row& r = rows[std::string(stack.back()->name()) + "  " + push->name()];
          ++r.calls;
          r.us += us;
        }
      }
    }
  }
  std::vector<std::pair<std::string, Row>> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
  std::string out;
  char line[240];
  std::snprintf(line, sizeof line, "  %-64s %6s %10s %7s\n", "phase  op", "calls", "ms/step", "share");
  out += line;
  for (const auto& [name, r] : sorted) {
    if (r.us < 1e-3 * total_us) continue;  // the long tail of tiny ops
    std::snprintf(line, sizeof line, "  %-64s %6ld %10.3f %6.1f%%\n", name.c_str(), r.calls / steps,
                  1e-3 * r.us / steps, 100.0 * r.us / total_us);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-64s %6s %10.3f  (ops under 0.1%% not listed)\n",
                "total (forward + backward + optimizer)", "", 1e-3 * total_us / steps);
  return out + line;
#else
  (void)images, (void)targets, (void)batch, (void)hyper, (void)steps;
  return "  (the per-op profile uses LibTorch 1.x's legacy profiler; not available in " TORCH_VERSION ")\n";
#endif
}

void set_torch_threads(int threads) { torch::set_num_threads(threads); }
int torch_threads() { return torch::get_num_threads(); }

std::string torch_description() {
  return std::string("LibTorch ") + TORCH_VERSION + (torch::cuda::is_available() ? " (cuda available)" : " (cpu)");
}

}  // namespace vitscale::torch_ref
