// param_table.h — every parameter of the ViT: its timm name, shape and place in
// the flat parameter buffer.
//
// Order is timm's VisionTransformer.named_parameters() order (cls_token,
// pos_embed, patch_embed.proj.*, blocks.N.*, norm.* or fc_norm.*, head.*), so
// the flat buffer's reverse order is the order in which the hand-written
// backward finishes gradients: a gradient bucket is a contiguous slice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/vit_config.h"

namespace vitscale {

struct ParamInfo {
  std::string name;                 // timm name, e.g. "blocks.3.attn.qkv.weight"
  std::vector<std::int64_t> shape;  // timm shape, e.g. {3*D, D}; patch_embed.proj.weight is (D, C, P, P)
  std::int64_t offset = 0;          // elements into the flat buffer
  std::int64_t numel = 0;
  bool decay = true;                // AdamW weight decay applies (matrices only)
};

// Which parameters of block l (indices into ParamTable::params).
struct BlockParamIndex {
  int norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

class ParamTable {
 public:
  explicit ParamTable(const ViTConfig& cfg);

  const std::vector<ParamInfo>& params() const { return params_; }
  std::int64_t total_numel() const { return total_; }
  const ParamInfo& find(const std::string& name) const;  // throws naming the missing name
  std::vector<ParamSegment> segments() const;            // one per parameter, for AdamW

  // The weight groups forward and backward visit, in forward order, each a
  // contiguous [begin, begin + count) of the flat buffer: 0 the embedding
  // (cls_token, pos_embed, patch_embed), 1..L the blocks, L+1 the final norm
  // and the head. ZeRO-3 gathers one group at a time.
  struct Range {
    std::int64_t begin = 0, count = 0;
    std::int64_t end() const { return begin + count; }
  };
  std::vector<Range> weight_groups() const;
  // The flat offsets ViTModel::backward reports ready (grads_ready_from), in
  // the order it reports them: head, final norm, blocks L-1..0, then 0.
  std::vector<std::int64_t> backward_ready_offsets() const;

  // Indices of the model's parameters (cls_token is -1 with mean pooling).
  int cls_token = -1, pos_embed = -1, patch_w = -1, patch_b = -1, norm_w = -1, norm_b = -1, head_w = -1,
      head_b = -1;
  std::vector<BlockParamIndex> blocks;

 private:
  int add(std::string name, std::vector<std::int64_t> shape, bool decay);
  std::vector<ParamInfo> params_;
  std::int64_t total_ = 0;
};

}  // namespace vitscale
