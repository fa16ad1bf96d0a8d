// init_from_test.cpp — --init-from: a timm-layout file written by the project's
// own safetensors writer from a model of another grid and class count loads
// (pos_embed resampled, a fresh head), mismatches are named, and it trains.
#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/backend.h"
#include "runtime/pretrained.h"
#include "runtime/safetensors.h"
#include "runtime/vit_model.h"
#include "train_util.h"

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

// The source: 12x12 images at patch 4 (a 3x3 grid), 10 classes. The target below: 16x16 (4x4), 4 classes.
const ViTConfig kSource{12, 3, 4, 32, 1, 2, 64, 10, Pooling::cls_token};
const ViTConfig kTarget{16, 3, 4, 32, 1, 2, 64, 4, Pooling::cls_token};

std::vector<float> params_of(const ViTModel& m) {
  std::vector<float> flat(static_cast<std::size_t>(m.table().total_numel()));
  m.read_params(flat);
  return flat;
}

std::vector<float> slice(const ViTModel& m, const std::vector<float>& flat, const std::string& name) {
  const ParamInfo& p = m.table().find(name);
  return {flat.begin() + p.offset, flat.begin() + p.offset + p.numel};
}

std::string error_of(ViTModel& model, const SafetensorsFile& f) {
  try {
    init_from_pretrained(model, f, "w.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("resample_pos_embed keeps the class token row and preserves constant and linear fields", "[init_from]") {
  const int D = 3, prefix = 1;
  for (const auto& [from, to] : {std::pair{4, 7}, std::pair{6, 3}, std::pair{3, 8}}) {
    INFO(from << "x" << from << " -> " << to << "x" << to);
    // Constant: every grid row is (0.25, -1.5, 3); the class token row (9, 8, 7).
    std::vector<float> pos = {9.f, 8.f, 7.f};
    for (int i = 0; i < from * from; ++i) pos.insert(pos.end(), {0.25f, -1.5f, 3.f});
    const std::vector<float> r = resample_pos_embed(pos, prefix, from, from, to, to, D);
    REQUIRE(r.size() == static_cast<std::size_t>((1 + to * to) * D));
    CHECK(std::vector<float>(r.begin(), r.begin() + 3) == std::vector<float>{9.f, 8.f, 7.f});
    for (int i = 0; i < to * to; ++i) {
      CHECK(r[3 + i * D + 0] == Approx(0.25f).margin(1e-6));
      CHECK(r[3 + i * D + 1] == Approx(-1.5f).margin(1e-6));
      CHECK(r[3 + i * D + 2] == Approx(3.f).margin(1e-6));
    }
  }
  // Linear: f(y, x) = 0.5 y - 0.25 x + 1 (grid coordinates). Upsampling 5 -> 10 samples
  // source coordinate s = (j + 0.5) * 5 / 10 - 0.5; where all four taps lie in the grid, f(s) exactly.
  const int from = 5, to = 10;
  std::vector<float> pos(D, 0.f);
  for (int y = 0; y < from; ++y)
    for (int x = 0; x < from; ++x) pos.insert(pos.end(), {0.5f * y - 0.25f * x + 1.f, 2.f * x, -1.f * y});
  const std::vector<float> r = resample_pos_embed(pos, 1, from, from, to, to, D);
  int interior = 0;
  for (int y = 0; y < to; ++y)
    for (int x = 0; x < to; ++x) {
      const double sy = (y + 0.5) * from / to - 0.5, sx = (x + 0.5) * from / to - 0.5;
      if (sy < 1.0 || sy > from - 2.0 || sx < 1.0 || sx > from - 2.0) continue;
      ++interior;
      const float* v = r.data() + (1 + y * to + x) * D;
      CHECK(v[0] == Approx(0.5 * sy - 0.25 * sx + 1.0).margin(1e-5));
      CHECK(v[1] == Approx(2.0 * sx).margin(1e-5));
      CHECK(v[2] == Approx(-sy).margin(1e-5));
    }
  CHECK(interior == 16);  // y, x in 3..6
}

TEST_CASE("init-from (--init-from) loads a timm-layout file of another grid and class count: pos_embed resampled, fresh head",
          "[init_from]") {
  TempDir dir("init_from");
  auto backend = make_cpu_backend(2);
  ViTModel source(kSource, *backend, ModelShape{2, 12}, ImageNorm{});
  source.init_parameters(5);
  save_weights(source, dir / "w.safetensors");
  const SafetensorsFile file = read_safetensors(dir / "w.safetensors");

  ViTModel fresh(kTarget, *backend, ModelShape{2, 16}, ImageNorm{});
  fresh.init_parameters(11);
  ViTModel target(kTarget, *backend, ModelShape{2, 16}, ImageNorm{});
  target.init_parameters(11);
  const std::vector<std::string> notes = init_from_pretrained(target, file, "w.safetensors");
  REQUIRE(notes.size() == 2);
  CHECK_THAT(notes[0], Catch::Contains("w.safetensors: head.weight (10,32) is for 10 classes, this run has 4: a fresh "
                                       "classifier head"));
  CHECK_THAT(notes[1], Catch::Contains("pos_embed resampled from a 3x3 to a 4x4 patch grid") &&
                           Catch::Contains("the class token row kept"));

  const std::vector<float> src = params_of(source), got = params_of(target), init = params_of(fresh);
  for (const std::string name : {"cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "norm.bias"})
    CHECK(slice(target, got, name) == slice(source, src, name));
  CHECK(slice(target, got, "head.weight") == slice(fresh, init, "head.weight"));  // the seed's fresh head
  const std::vector<float> pos = slice(target, got, "pos_embed");
  const std::vector<float> src_pos = slice(source, src, "pos_embed");
  CHECK(std::vector<float>(pos.begin(), pos.begin() + 32) == std::vector<float>(src_pos.begin(), src_pos.begin() + 32));
  CHECK(pos == resample_pos_embed(src_pos, 1, 3, 3, 4, 4, 32));

  // Any other mismatch: one line naming the tensor.
  SafetensorsFile wrong = file;
  wrong.tensors.push_back(NamedTensor{"blocks.0.ls1.gamma", {32}, std::vector<float>(32, 1.f)});
  CHECK_THAT(error_of(target, wrong), Catch::Contains("w.safetensors: unexpected tensor 'blocks.0.ls1.gamma' (32)"));
  ViTModel wide(ViTConfig{16, 3, 4, 48, 1, 2, 64, 4, Pooling::cls_token}, *backend, ModelShape{2, 16}, ImageNorm{});
  CHECK_THAT(error_of(wide, file), Catch::Contains("tensor 'cls_token' has shape (1,1,32), the model needs (1,1,48)"));
  ViTModel patch8(ViTConfig{16, 3, 8, 32, 1, 2, 64, 4, Pooling::cls_token}, *backend, ModelShape{2, 16}, ImageNorm{});
  CHECK_THAT(error_of(patch8, file), Catch::Contains("tensor 'patch_embed.proj.weight' has shape (32,3,4,4)"));
  ViTModel mean(ViTConfig{16, 3, 4, 32, 1, 2, 64, 4, Pooling::mean}, *backend, ModelShape{2, 16}, ImageNorm{});
  CHECK_THAT(error_of(mean, file),
             Catch::Contains("unexpected tensor 'cls_token' (1,1,32): the file's model has a class token"));
  SafetensorsFile no_block = file;
  std::erase_if(no_block.tensors, [](const NamedTensor& t) { return t.name == "blocks.0.mlp.fc1.bias"; });
  CHECK_THAT(error_of(target, no_block), Catch::Contains("missing tensor 'blocks.0.mlp.fc1.bias' (64)"));
}

TEST_CASE("vit_train --init-from fine-tunes: the run starts from the file's weights and trains", "[init_from]") {
  TempDir dir("init_from_train");
  {
    auto backend = make_cpu_backend(2);
    ViTModel source(kSource, *backend, ModelShape{2, 12}, ImageNorm{});
    source.init_parameters(5);
    save_weights(source, dir / "w.safetensors");
  }
  nlohmann::json j = tiny_synthetic_config();
  j["model"] = {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 1}, {"heads", 2}, {"mlp_dim", 64}};
  j["data"]["synthetic"]["classes"] = 4;
  j["training"]["max_steps"] = 4;
  j["training"]["epochs"] = 0;
  j["logging"] = {{"metrics_out", dir / "plain.jsonl"}};
  std::string console;
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::finished);

  j["logging"] = {{"metrics_out", dir / "tuned.jsonl"}};
  j["checkpoint"] = {{"init_from", dir / "w.safetensors"}};
  const TrainResult r = train_in_process(resolve_json(j), console);
  INFO(console);
  REQUIRE(r.outcome == TrainResult::Outcome::finished);
  CHECK_THAT(console,
             Catch::Contains("initialised from " + dir / "w.safetensors" + " (optimizer and schedule start fresh)"));
  CHECK_THAT(console, Catch::Contains("pos_embed resampled from a 3x3 to a 4x4 patch grid"));
  CHECK_THAT(console, Catch::Contains("a fresh classifier head"));
  const auto plain = losses_by_step(read_jsonl(dir / "plain.jsonl"));
  const auto tuned = losses_by_step(read_jsonl(dir / "tuned.jsonl"));
  REQUIRE(tuned.size() == 4);
  CHECK(tuned.at(1) != plain.at(1));  // another starting point
  for (const auto& [step, loss] : tuned) CHECK(std::isfinite(loss));
  CHECK(std::isfinite(r.test_acc));

  // A missing file is one line naming it, before step 1.
  j["checkpoint"]["init_from"] = dir / "absent.safetensors";
  CHECK_THROWS_WITH(train_in_process(resolve_json(j), console), Catch::Contains(dir / "absent.safetensors"));
}
