// weight_ema_test.cpp — the weights' moving average (--ema-decay): it does
// not change training, it is the average a host loop computes from every
// step's weights, it is what the checkpoint keeps and the export writes, it
// resumes bit for bit, and what cannot work is refused.
#include "train/weight_ema.h"

#include <catch2/catch.hpp>
#include <sstream>

#include "runtime/backend.h"
#include "runtime/pretrained.h"
#include "runtime/safetensors.h"
#include "train/checkpoint.h"
#include "train/model_card.h"
#include "train/trainer.h"
#include "train_util.h"

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

// The tiny synthetic problem's model (tests/train/train_util.h).
ParamTable tiny_table() { return ParamTable(ViTConfig{16, 3, 4, 48, 2, 3, 96, 10, Pooling::cls_token}); }

// One flat vector from a file's timm-named tensors (prefix "" or "ema.").
std::vector<float> flat_tensors(const SafetensorsFile& f, const ParamTable& table, const std::string& prefix) {
  std::vector<float> flat(static_cast<std::size_t>(table.total_numel()));
  for (const ParamInfo& p : table.params()) {
    const NamedTensor* t = f.find(prefix + p.name);
    REQUIRE(t);
    std::copy(t->values.begin(), t->values.end(), flat.begin() + p.offset);
  }
  return flat;
}

// The host's average: e ← d·e + (1 − d)·p, each product rounded (volatile:
// no contraction into an FMA), as the kernels do.
void host_average(std::vector<float>& e, const std::vector<float>& p, float decay) {
  const float take = 1.f - decay;
  for (std::size_t i = 0; i < e.size(); ++i) {
    volatile float kept = decay * e[i];
    volatile float taken = take * p[i];
    e[i] = kept + taken;
  }
}

std::map<std::int64_t, const nlohmann::json*> evals_by_step(const std::vector<nlohmann::json>& records) {
  std::map<std::int64_t, const nlohmann::json*> out;
  for (const auto& r : records)
    if (r.at("event") == "eval") out[r.at("step").get<std::int64_t>()] = &r;
  return out;
}

}  // namespace

TEST_CASE("the average's decay ramps as min(decay, (1 + t) / (10 + t)) with the warm-up", "[ema]") {
  CHECK(WeightEma::decay_at(0.999, true, 1) == static_cast<float>(2.0 / 11.0));
  CHECK(WeightEma::decay_at(0.999, true, 100) == static_cast<float>(101.0 / 110.0));
  CHECK(WeightEma::decay_at(0.999, true, 100000) == 0.999f);  // (1 + t) / (10 + t) > 0.999 from t = 8,992
  CHECK(WeightEma::decay_at(0.999, false, 1) == 0.999f);
}

TEST_CASE("the weight average leaves training's bits alone and is every step's weights averaged on the host",
          "[ema][trainer]") {
  TempDir dir("ema");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["max_steps"] = 24;  // 16 steps an epoch: evaluations at steps 16 and 24
  j["logging"] = {{"metrics_out", dir / "live.jsonl"}};
  std::string console;
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::finished);

  const float decay = 0.9f;
  j["training"]["ema_decay"] = decay;
  j["logging"] = {{"metrics_out", dir / "ema.jsonl"}};
  j["checkpoint"] = {{"save_dir", dir / "ckpt"}, {"export_model", dir / "model"}};
  auto backend = make_cpu_backend(2);
  StopSignal stop;
  std::ostringstream out;
  TrainerIo io;
  io.console = &out;
  io.stop = &stop;
  Trainer* trainer = nullptr;
  std::vector<float> average, weights;
  io.on_step = [&](std::int64_t step) {
    trainer->model().read_params(weights);
    host_average(average, weights, WeightEma::decay_at(decay, true, step));
  };
  Trainer t(resolve_json(j), *backend, io);
  trainer = &t;
  const auto n = static_cast<std::size_t>(t.model().table().total_numel());
  average.resize(n), weights.resize(n);
  t.model().read_params(average);  // the average starts from the initial weights
  const TrainResult r = t.run();
  INFO(out.str());
  REQUIRE(r.outcome == TrainResult::Outcome::finished);
  CHECK_THAT(out.str(), Catch::Contains("EMA weights") && Catch::Contains("weight average (EMA): decay 0.9"));

  // Training is unchanged: the same losses, and the live weights evaluate as
  // the run without the average did.
  check_same_losses(dir / "live.jsonl", dir / "ema.jsonl", 24);
  const auto live = read_jsonl(dir / "live.jsonl"), ema = read_jsonl(dir / "ema.jsonl");
  const auto live_evals = evals_by_step(live), ema_evals = evals_by_step(ema);
  REQUIRE(live_evals.size() == 2);
  REQUIRE(ema_evals.size() == 2);
  bool average_differs = false;
  for (const auto& [step, rec] : ema_evals) {
    INFO("step " << step);
    CHECK(rec->at("weights") == "ema");
    CHECK(rec->at("live_test_acc") == live_evals.at(step)->at("test_acc"));
    CHECK(rec->at("live_test_loss") == live_evals.at(step)->at("test_loss"));
    average_differs |= rec->at("test_loss") != rec->at("live_test_loss");
  }
  CHECK(average_differs);  // the evaluation did read the average

  // The checkpoint keeps the average, the host's bit for bit, and the live
  // weights beside it; the export writes the average.
  const ParamTable table = tiny_table();
  const Checkpoint ckpt = read_checkpoint(latest_checkpoint(dir / "ckpt"), table);
  CHECK(ckpt.ema == average);
  CHECK(ckpt.params == weights);
  CHECK(ckpt.ema != ckpt.params);
  CHECK(flat_tensors(read_safetensors(dir / "model/model.safetensors"), table, "") == average);
  CHECK(flat_tensors(read_safetensors(latest_checkpoint(dir / "ckpt")), table, "ema.") == average);
  // The model card's accuracy is the average's (the final evaluation's test_acc).
  CHECK(r.test_acc == ema_evals.at(24)->at("test_acc").get<double>());

  // vit_eval / vit_predict open the checkpoint's average, the model the run
  // reported; --init-from a checkpoint takes its live weights (and says so).
  const SavedModel saved = open_saved_model(dir / "ckpt");
  CHECK(saved.checkpoint);
  CHECK(saved.average);
  ViTModel loaded(saved.card.vit, *backend, ModelShape{2, 16}, ImageNorm{});
  load_saved_weights(loaded, saved);
  std::vector<float> got(n);
  loaded.read_params(got);
  CHECK(got == average);
  CHECK_FALSE(open_saved_model(dir / "model").average);  // the export holds the average as its weights
  ViTModel fine_tuned(saved.card.vit, *backend, ModelShape{2, 16}, ImageNorm{});
  const std::string ckpt_path = latest_checkpoint(dir / "ckpt");
  const std::vector<std::string> notes = init_from_pretrained(fine_tuned, read_safetensors(ckpt_path), ckpt_path);
  fine_tuned.read_params(got);
  CHECK(got == weights);
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Catch::Contains("weight average") && Catch::Contains("live weights are used"));
}

TEST_CASE("a run with the average resumes bit for bit, and only with the same average", "[ema][trainer][resume]") {
  TempDir dir("ema_resume");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["max_steps"] = 40;
  j["training"]["ema_decay"] = 0.95;
  j["logging"] = {{"metrics_out", dir / "whole.jsonl"}};
  j["checkpoint"] = {{"save_dir", dir / "whole"}};
  std::string console;
  const TrainResult whole = train_in_process(resolve_json(j), console);
  REQUIRE(whole.outcome == TrainResult::Outcome::finished);

  j["logging"] = {{"metrics_out", dir / "parts.jsonl"}};
  j["checkpoint"] = {{"save_dir", dir / "parts"}};
  j["training"]["stop_at_step"] = 20;  // mid-epoch
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::paused);

  // Without the average, or with another decay, the checkpoint is refused.
  nlohmann::json plain = j;
  plain["training"].erase("stop_at_step");
  plain["training"].erase("ema_decay");
  plain["checkpoint"]["resume"] = dir / "parts";
  CHECK_THROWS_WITH(train_in_process(resolve_json(plain), console),
                    Catch::Contains("carries a weight average (training.ema_decay 0.95)"));
  nlohmann::json other = plain;
  other["training"]["ema_decay"] = 0.9;
  CHECK_THROWS_WITH(train_in_process(resolve_json(other), console),
                    Catch::Contains("config mismatch: training.ema_decay is 0.95 in the checkpoint but 0.9"));

  j["training"].erase("stop_at_step");
  j["checkpoint"]["resume"] = dir / "parts";
  const TrainResult resumed = train_in_process(resolve_json(j), console);
  REQUIRE(resumed.outcome == TrainResult::Outcome::finished);
  check_same_losses(dir / "whole.jsonl", dir / "parts.jsonl", 40);
  CHECK(resumed.test_acc == whole.test_acc);
  CHECK(resumed.test_loss == whole.test_loss);
  const ParamTable table = tiny_table();
  const Checkpoint a = read_checkpoint(latest_checkpoint(dir / "whole"), table);
  const Checkpoint b = read_checkpoint(latest_checkpoint(dir / "parts"), table);
  CHECK(a.ema == b.ema);
  CHECK(a.params == b.params);
}

TEST_CASE("an ema_decay outside [0, 1) and the average at ZeRO stage 3 are refused naming the key", "[ema][config]") {
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["ema_decay"] = 1.0;
  CHECK_THAT(config_refusal(j, 1, "c.json"), Catch::Contains("training.ema_decay") && Catch::Contains("[0, 1)"));
  j["training"]["ema_decay"] = -0.5;
  CHECK_THAT(config_refusal(j, 1, "c.json"), Catch::Contains("training.ema_decay"));
  j["training"]["ema_decay"] = 0.999;
  j["zero_optimization"] = {{"stage", 3}};
  CHECK_THAT(config_refusal(j, 2, "c.json"),
             Catch::Contains("training.ema_decay") && Catch::Contains("zero_optimization.stage 3"));
  j["zero_optimization"] = {{"stage", 2}};
  CHECK(config_refusal(j, 2, "c.json").empty());
}
