// The parameter table: timm names, shapes, order, counts, and config validation.
#include <catch2/catch.hpp>

#include "runtime/param_table.h"

using namespace vitscale;

namespace {

std::int64_t count_params(const ParamTable& t) {
  std::int64_t n = 0;
  for (const auto& p : t.params()) n += p.numel;
  return n;
}

ViTConfig vit_b16_224(int classes) { return vit_preset("vit-b16-224").config(3, classes); }

}  // namespace

TEST_CASE("ViT-B/16 at 224 has timm's parameter count", "[param_table]") {
  // timm's vit_base_patch16_224 reports 86,567,656 parameters (1000 classes).
  ParamTable t(vit_b16_224(1000));
  CHECK(count_params(t) == 86567656);
  CHECK(t.total_numel() >= count_params(t));
  CHECK(vit_b16_224(1000).tokens() == 197);
}

TEST_CASE("parameters are in timm's named_parameters order with timm shapes", "[param_table]") {
  ViTConfig c;  // 28x28x1, patch 4, D=128, depth 6
  ParamTable t(c);
  const auto& ps = t.params();
  REQUIRE(ps.size() == 4 + 12 * 6 + 4);
  CHECK(ps[0].name == "cls_token");
  CHECK(ps[0].shape == std::vector<std::int64_t>{1, 1, 128});
  CHECK(ps[1].name == "pos_embed");
  CHECK(ps[1].shape == std::vector<std::int64_t>{1, 50, 128});
  CHECK(ps[2].name == "patch_embed.proj.weight");
  CHECK(ps[2].shape == std::vector<std::int64_t>{128, 1, 4, 4});
  CHECK(ps[3].name == "patch_embed.proj.bias");
  CHECK(ps[4].name == "blocks.0.norm1.weight");
  CHECK(ps[6].name == "blocks.0.attn.qkv.weight");
  CHECK(ps[6].shape == std::vector<std::int64_t>{384, 128});
  CHECK(ps[12].name == "blocks.0.mlp.fc1.weight");
  CHECK(ps[12].shape == std::vector<std::int64_t>{512, 128});
  CHECK(ps[ps.size() - 4].name == "norm.weight");
  CHECK(ps[ps.size() - 2].name == "head.weight");
  CHECK(ps.back().name == "head.bias");
  // Offsets increase (so reverse flat order is backward's finishing order) and
  // every parameter starts 64-byte aligned.
  for (std::size_t i = 1; i < ps.size(); ++i) {
    CHECK(ps[i].offset >= ps[i - 1].offset + ps[i - 1].numel);
    CHECK(ps[i].offset % 16 == 0);
  }
  CHECK(&t.find("blocks.5.mlp.fc2.bias") == &ps[static_cast<std::size_t>(t.blocks[5].fc2_b)]);
  CHECK_THROWS_WITH(t.find("blocks.6.norm1.weight"), Catch::Contains("blocks.6.norm1.weight"));
}

TEST_CASE("weight decay applies to matrices only", "[param_table]") {
  ParamTable t(ViTConfig{});
  for (const auto& p : t.params()) {
    const bool matrix = p.name.ends_with(".weight") && p.shape.size() >= 2;
    INFO(p.name);
    CHECK(p.decay == matrix);
  }
}

TEST_CASE("mean pooling drops the class token and uses fc_norm", "[param_table]") {
  ViTConfig c;
  c.pooling = Pooling::mean;
  ParamTable t(c);
  CHECK(t.cls_token == -1);
  CHECK(t.params()[0].name == "pos_embed");
  CHECK(t.params()[0].shape == std::vector<std::int64_t>{1, 49, 128});
  CHECK(t.params()[static_cast<std::size_t>(t.norm_w)].name == "fc_norm.weight");
}

TEST_CASE("impossible configurations are refused with one line naming the problem", "[config]") {
  ViTConfig c;
  c.heads = 3;  // 128 % 3 != 0
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("dim 128 is not divisible by heads 3"));
  c = ViTConfig{};
  c.patch_size = 5;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("image_size 28 is not divisible by patch_size 5"));
  c = ViTConfig{};
  c.depth = 0;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("depth must be positive"));
  c = ViTConfig{};
  c.dim = -8;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("dim must be positive"));
  c = ViTConfig{};
  c.channels = 2;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("channels must be 1 or 3"));
  CHECK_THROWS_AS(ParamTable(c), std::invalid_argument);
}
