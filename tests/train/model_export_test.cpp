// model_export_test.cpp — the finished model leaves vit_train usable:
// --export-model writes timm-named weights (no optimizer state) and a card that
// rebuilds the model; every checkpoint carries the card; vit_eval on either
// prints the test accuracy and loss training printed, with a confusion matrix.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "runtime/backend.h"
#include "runtime/safetensors.h"
#include "train/checkpoint.h"
#include "train/model_card.h"
#include "train/trainer.h"
#include "train_util.h"

#ifndef VIT_EVAL_EXE
#error "VIT_EVAL_EXE must name the vit_eval binary (tests/train/tests.cmake)"
#endif

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

// Two epochs of the tiny synthetic problem, exported and checkpointed.
TrainResult train_and_export(const TempDir& dir, const std::string& pooling) {
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["epochs"] = 2;
  j["training"]["eval_batch_size"] = 48;  // not a divisor of the 512 test images: a partial last batch
  j["model"]["pooling"] = pooling;
  j["logging"] = {{"metrics_out", dir / "m.jsonl"}};
  j["checkpoint"] = {{"save_dir", dir / "ckpt"}, {"export_model", dir / "model"}};
  std::string console;
  const TrainResult r = train_in_process(resolve_json(j), console);
  INFO(console);
  REQUIRE(r.outcome == TrainResult::Outcome::finished);
  CHECK_THAT(console, Catch::Contains(dir / "model/model.safetensors"));
  return r;
}

}  // namespace

TEST_CASE("the exported model (--export-model) is timm-named weights only and a card with timm's arguments",
          "[export]") {
  TempDir dir("export");
  const TrainResult r = train_and_export(dir, "cls");
  const SafetensorsFile weights = read_safetensors(dir / "model/model.safetensors");
  const ViTConfig expected{16, 3, 4, 48, 2, 3, 96, 10, Pooling::cls_token};
  const ParamTable table(expected);
  REQUIRE(weights.tensors.size() == table.params().size());  // no optimizer.* tensors
  for (const ParamInfo& p : table.params()) {
    const NamedTensor* t = weights.find(p.name);
    REQUIRE(t);
    CHECK(t->shape == p.shape);
  }
  CHECK(weights.metadata.at("format") == "pt");

  const nlohmann::json card = nlohmann::json::parse(slurp(dir / "model/model.json"));
  const nlohmann::json& timm = card.at("timm");
  CHECK(timm.at("img_size") == 16);
  CHECK(timm.at("patch_size") == 4);
  CHECK(timm.at("in_chans") == 3);
  CHECK(timm.at("embed_dim") == 48);
  CHECK(timm.at("depth") == 2);
  CHECK(timm.at("num_heads") == 3);
  CHECK(timm.at("mlp_ratio") == 2.0);
  CHECK(timm.at("global_pool") == "token");
  CHECK(timm.at("class_token") == true);
  CHECK(timm.at("num_classes") == 10);
  CHECK(card.at("layer_norm_eps") == 1e-6);
  CHECK(card.at("class_names").size() == 10);
  CHECK(card.at("normalization").at("mean").size() == 3);
  CHECK(card.at("result").at("test_acc").get<double>() == r.test_acc);

  const ModelCard parsed = parse_model_card(card, "model.json");
  CHECK(parsed.vit.describe() == expected.describe());
  CHECK(parsed.source_image_size == 16);

  // The last checkpoint is self-describing: the same card in its metadata.
  const SavedModel ckpt = open_saved_model(dir / "ckpt");
  CHECK(ckpt.checkpoint);
  CHECK(ckpt.card.vit.describe() == expected.describe());
  CHECK(ckpt.card.class_names == parsed.class_names);
}

TEST_CASE("mean pooling exports as timm's global_pool='avg' with fc_norm and no class token", "[export]") {
  TempDir dir("export_avg");
  train_and_export(dir, "mean");
  const nlohmann::json card = nlohmann::json::parse(slurp(dir / "model/model.json"));
  CHECK(card.at("timm").at("global_pool") == "avg");
  CHECK(card.at("timm").at("class_token") == false);
  CHECK(card.at("timm").at("fc_norm") == true);
  const SafetensorsFile weights = read_safetensors(dir / "model/model.safetensors");
  CHECK(weights.find("fc_norm.weight"));
  CHECK_FALSE(weights.find("cls_token"));
  CHECK(weights.find("pos_embed")->shape == std::vector<std::int64_t>{1, 16, 48});
}

TEST_CASE("vit_eval on the exported weights and on the checkpoint prints what training printed", "[export][eval]") {
  TempDir dir("eval");
  train_and_export(dir, "cls");
  const auto records = read_jsonl(dir / "m.jsonl");
  const nlohmann::json* fin = find_event(records, "final");
  REQUIRE(fin);
  for (const std::string model : {dir / "model/model.safetensors", dir / "ckpt"}) {
    INFO(model);
    const ProgramRun run = run_program(VIT_EVAL_EXE, model + " --out " + dir / "eval.json", dir);
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    const nlohmann::json e = nlohmann::json::parse(slurp(dir / "eval.json"));
    CHECK(e.at("images") == 512);
    CHECK(e.at("test_acc").get<double>() == fin->at("test_acc").get<double>());    // exact
    CHECK(e.at("test_loss").get<double>() == fin->at("test_loss").get<double>());  // exact: same code, same batches
    // The confusion matrix: rows sum to each class's images, the diagonal to the correct ones.
    const auto& m = e.at("confusion");
    REQUIRE(m.size() == 10);
    std::int64_t total = 0, diagonal = 0;
    for (std::size_t t = 0; t < 10; ++t) {
      std::int64_t row = 0;
      for (std::size_t p = 0; p < 10; ++p) row += m.at(t).at(p).get<std::int64_t>();
      CHECK(row == e.at("per_class").at(t).at("images").get<std::int64_t>());
      diagonal += m.at(t).at(t).get<std::int64_t>();
      total += row;
    }
    CHECK(total == 512);
    CHECK(static_cast<double>(diagonal) / 512 == e.at("test_acc").get<double>());
    CHECK_THAT(run.out, Catch::Contains("confusion"));
  }
}

TEST_CASE("vit_eval refuses a weights file without its card, and a non-model file, in one line", "[eval]") {
  TempDir dir("eval_bad");
  { std::ofstream(dir / "junk.safetensors") << "not a safetensors file at all"; }
  for (const std::string& bad : {dir / "junk.safetensors", dir / "missing.safetensors"}) {
    const ProgramRun run = run_program(VIT_EVAL_EXE, bad, dir);
    INFO(run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.rfind("vit_eval: error: ", 0) == 0);
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
    CHECK_THAT(run.err, Catch::Contains(bad));
  }
}
