#include "runtime/param_table.h"

#include <stdexcept>

namespace vitscale {

int ParamTable::add(std::string name, std::vector<std::int64_t> shape, bool decay) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  // Keep every parameter 16-element aligned (64 bytes) so vector loads of
  // any parameter start on a cache line, in every arena that mirrors this table.
  constexpr std::int64_t kAlign = 16;
  total_ = (total_ + kAlign - 1) / kAlign * kAlign;
  params_.push_back(ParamInfo{std::move(name), std::move(shape), total_, n, decay});
  total_ += n;
  return static_cast<int>(params_.size()) - 1;
}

ParamTable::ParamTable(const ViTConfig& c) {
  c.validate();
  const std::int64_t D = c.dim, F = c.mlp_dim, P = c.patch_size;
  if (c.has_cls_token()) cls_token = add("cls_token", {1, 1, D}, false);
  pos_embed = add("pos_embed", {1, c.tokens(), D}, false);
  patch_w = add("patch_embed.proj.weight", {D, c.channels, P, P}, true);
  patch_b = add("patch_embed.proj.bias", {D}, false);
  for (int l = 0; l < c.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    BlockParamIndex bi{};
    bi.norm1_w = add(b + "norm1.weight", {D}, false);
    bi.norm1_b = add(b + "norm1.bias", {D}, false);
    bi.qkv_w = add(b + "attn.qkv.weight", {3 * D, D}, true);
    bi.qkv_b = add(b + "attn.qkv.bias", {3 * D}, false);
    bi.proj_w = add(b + "attn.proj.weight", {D, D}, true);
    bi.proj_b = add(b + "attn.proj.bias", {D}, false);
    bi.norm2_w = add(b + "norm2.weight", {D}, false);
    bi.norm2_b = add(b + "norm2.bias", {D}, false);
    bi.fc1_w = add(b + "mlp.fc1.weight", {F, D}, true);
    bi.fc1_b = add(b + "mlp.fc1.bias", {F}, false);
    bi.fc2_w = add(b + "mlp.fc2.weight", {D, F}, true);
    bi.fc2_b = add(b + "mlp.fc2.bias", {D}, false);
    blocks.push_back(bi);
  }
  // timm: global_pool='token' → norm after the blocks; 'avg' → fc_norm after pooling.
  const std::string final_norm = c.pooling == Pooling::cls_token ? "norm" : "fc_norm";
  norm_w = add(final_norm + ".weight", {D}, false);
  norm_b = add(final_norm + ".bias", {D}, false);
  head_w = add("head.weight", {c.num_classes, D}, true);
  head_b = add("head.bias", {c.num_classes}, false);
  constexpr std::int64_t kAlign = 16;
  total_ = (total_ + kAlign - 1) / kAlign * kAlign;
}

const ParamInfo& ParamTable::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p;
  throw std::invalid_argument("no parameter named '" + name + "' in this model");
}

std::vector<ParamSegment> ParamTable::segments() const {
  std::vector<ParamSegment> s;
  s.reserve(params_.size());
  for (const auto& p : params_) s.push_back(ParamSegment{p.offset, p.numel, p.decay});
  return s;
}

std::vector<ParamTable::Range> ParamTable::weight_groups() const {
  std::vector<std::int64_t> starts = {0};
  for (const BlockParamIndex& b : blocks) starts.push_back(params_[static_cast<std::size_t>(b.norm1_w)].offset);
  starts.push_back(params_[static_cast<std::size_t>(norm_w)].offset);
  starts.push_back(total_);
  std::vector<Range> groups;
  for (std::size_t i = 0; i + 1 < starts.size(); ++i) groups.push_back(Range{starts[i], starts[i + 1] - starts[i]});
  return groups;
}

std::vector<std::int64_t> ParamTable::backward_ready_offsets() const {
  std::vector<std::int64_t> at = {params_[static_cast<std::size_t>(head_w)].offset,
                                  params_[static_cast<std::size_t>(norm_w)].offset};
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) at.push_back(params_[static_cast<std::size_t>(b->norm1_w)].offset);
  at.push_back(0);
  return at;
}

}  // namespace vitscale
