// trainer_test.cpp — the training loop, in process: it learns, it resumes bit
// for bit, and a SIGTERM stops it at a step boundary with a loadable checkpoint.
#include "train/trainer.h"

#include <catch2/catch.hpp>
#include <csignal>
#include <sstream>

#include "runtime/backend.h"
#include "train/checkpoint.h"
#include "train_util.h"

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

TrainResult run_training(const TrainConfig& config, StopSignal& stop, std::ostream& console,
                         std::function<void(std::int64_t)> on_step = {}) {
  auto backend = make_cpu_backend(config.threads);
  TrainerIo io;
  io.console = &console;
  io.stop = &stop;
  io.on_step = std::move(on_step);
  Trainer trainer(config, *backend, io);
  return trainer.run();
}

// The uninterrupted run of `j` (metrics in whole.jsonl), then the same run
// with `first` merged in, stopped at `stop_at` (checkpoint in ckpt/), and
// resumed from there with `second` merged in as well (both parts in
// parts.jsonl). The caller checks outcomes and losses.
struct StopResume {
  TrainResult whole, stopped, resumed;
  std::string resumed_console;
};

StopResume run_stopped_and_resumed(const nlohmann::json& j, const TempDir& dir, std::int64_t stop_at,
                                   const nlohmann::json& first_patch = nlohmann::json::object(),
                                   const nlohmann::json& second_patch = nlohmann::json::object()) {
  StopSignal stop;
  std::ostringstream console, resumed_console;
  StopResume r;
  nlohmann::json whole = j;
  whole["logging"] = {{"metrics_out", dir / "whole.jsonl"}};
  r.whole = run_training(resolve_json(whole), stop, console);

  nlohmann::json first = j;
  first.merge_patch(first_patch);
  first["logging"] = {{"metrics_out", dir / "parts.jsonl"}};
  first["checkpoint"]["save_dir"] = dir / "ckpt";
  first["training"]["stop_at_step"] = stop_at;
  r.stopped = run_training(resolve_json(first), stop, console);

  nlohmann::json second = first;
  second.merge_patch(second_patch);
  second["training"].erase("stop_at_step");
  second["checkpoint"]["resume"] = dir / "ckpt";
  r.resumed = run_training(resolve_json(second), stop, resumed_console);
  r.resumed_console = resumed_console.str();
  return r;
}

}  // namespace

TEST_CASE("a few hundred steps on synthetic data reach high test accuracy", "[trainer]") {
  // 16 steps an epoch, 12 epochs: 192 steps. Chance is 10%; each class is a
  // smooth pattern under per-pixel noise of +-80 (of 255), which the model
  // must learn to see through: after the first epoch it is still near chance.
  TempDir dir("learn");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["epochs"] = 12;
  j["data"]["synthetic"]["noise"] = 80;
  j["steps_per_print"] = 16;
  j["logging"] = {{"metrics_out", dir / "m.jsonl"}};
  const TrainConfig config = resolve_json(j);
  StopSignal stop;
  std::ostringstream console;
  const TrainResult r = run_training(config, stop, console);
  INFO(console.str());
  CHECK(r.outcome == TrainResult::Outcome::finished);
  CHECK(r.step == 192);
  CHECK(r.test_acc >= 0.9);
  const auto records = read_jsonl(dir / "m.jsonl");
  const auto losses = losses_by_step(records);
  REQUIRE(losses.size() >= 2);
  CHECK(losses.rbegin()->second < 0.5 * losses.begin()->second);  // the loss fell
  std::vector<double> accuracy;
  for (const auto& rec : records)
    if (rec.at("event") == "eval") accuracy.push_back(rec.at("test_acc").get<double>());
  REQUIRE(accuracy.size() == 12);  // one evaluation per epoch
  CHECK(accuracy.front() < 0.5);   // it was learned, not there from the start
  const nlohmann::json* fin = find_event(records, "final");
  REQUIRE(fin);
  CHECK(fin->at("test_acc").get<double>() == r.test_acc);
  for (const char* key : {"test_loss", "images_per_s", "wall_s"}) CHECK(fin->contains(key));
  // The final record's time to each round accuracy: reached (it ended >= 90%),
  // in order, and within the run's wall time.
  CHECK(fin->at("best_test_acc").get<double>() >= r.test_acc);
  const nlohmann::json& times = fin->at("time_to_acc");
  REQUIRE(times.size() == 3);
  const double t85 = times.at("0.85").get<double>(), t88 = times.at("0.88").get<double>(),
               t90 = times.at("0.90").get<double>();
  CHECK(0 < t85);
  CHECK(t85 <= t88);
  CHECK(t88 <= t90);
  CHECK(t90 <= fin->at("wall_s").get<double>());
  CHECK(console.str().find("  acc ") != std::string::npos);  // the progress line's last/best accuracy
  CHECK(console.str().find("; time to 85%: ") != std::string::npos);
}

TEST_CASE("holdout (--holdout) evaluates on the train split's tail and never reads the test split", "[trainer][holdout]") {
  TempDir dir("holdout");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["epochs"] = 1;
  j["data"]["holdout"] = 256;  // of 1024 train images: 768 to train on, 12 steps of 64
  j["logging"] = {{"metrics_out", dir / "m.jsonl"}};
  StopSignal stop;
  std::ostringstream console;
  const TrainResult r = run_training(resolve_json(j), stop, console);
  INFO(console.str());
  CHECK(r.outcome == TrainResult::Outcome::finished);
  CHECK(r.step == 12);
  CHECK(console.str().find("the train split's last 256 images; the test split is not read") != std::string::npos);
  CHECK(console.str().find("holdout_acc") != std::string::npos);
  const auto records = read_jsonl(dir / "m.jsonl");
  int evals = 0;
  for (const auto& rec : records)
    if (rec.at("event") == "eval") {
      ++evals;
      CHECK(rec.at("images").get<std::int64_t>() == 256);
      CHECK(rec.at("split") == "holdout");
    }
  CHECK(evals == 1);
  // Too large a holdout is refused with the numbers.
  j["data"]["holdout"] = 1024;
  std::ostringstream refused;
  CHECK_THROWS_WITH(run_training(resolve_json(j), stop, refused),
                    Catch::Contains("data.holdout (--holdout) 1024 leaves no training images of the 1024"));
}

TEST_CASE("resume continues bit for bit: N steps == N/2, stop, resume to N", "[trainer][resume]") {
  // 16 steps per epoch; the stop at 20 is mid-epoch, so the data position,
  // not just the epoch, must be restored. Gradient accumulation 2 and
  // crop/flip augmentation are on.
  TempDir dir("resume");
  nlohmann::json j = tiny_synthetic_config();
  j["train_micro_batch_size_per_gpu"] = 32;
  j["gradient_accumulation_steps"] = 2;
  j["training"]["max_steps"] = 40;
  j["checkpoint"] = {{"keep", 2}};
  const StopResume r = run_stopped_and_resumed(j, dir, 20);
  const TrainResult &a = r.whole, &b = r.stopped, &c = r.resumed;
  REQUIRE(a.outcome == TrainResult::Outcome::finished);
  REQUIRE(b.outcome == TrainResult::Outcome::paused);
  CHECK(b.step == 20);
  REQUIRE(c.outcome == TrainResult::Outcome::finished);
  CHECK(c.step == 40);

  const auto expected = losses_by_step(read_jsonl(dir / "whole.jsonl"));
  const auto resumed = losses_by_step(read_jsonl(dir / "parts.jsonl"));
  REQUIRE(expected.size() == 40);
  REQUIRE(resumed.size() == 40);
  for (const auto& [step, loss] : expected) {
    INFO("step " << step);
    CHECK(resumed.at(step) == loss);  // exact: the same bits
  }
  CHECK(c.test_acc == a.test_acc);
  CHECK(c.test_loss == a.test_loss);
}

TEST_CASE("the thread count changes no bit: 2 threads == 1 thread, stop, resume on 3", "[trainer][resume][threads]") {
  // The CPU backend's contract (kernels/cpu/linear.h): every split of work is
  // a function of the shapes, never of the thread count. So a run may change
  // its thread count at a resume and still reproduce the uninterrupted run.
  TempDir dir("resume_threads");
  nlohmann::json j = tiny_synthetic_config();
  j["train_micro_batch_size_per_gpu"] = 32;
  j["gradient_accumulation_steps"] = 2;
  j["training"]["max_steps"] = 24;
  const StopResume r =
      run_stopped_and_resumed(j, dir, 13, {{"runtime", {{"threads", 1}}}}, {{"runtime", {{"threads", 3}}}});
  const TrainResult &a = r.whole, &c = r.resumed;
  REQUIRE(a.outcome == TrainResult::Outcome::finished);
  REQUIRE(r.stopped.outcome == TrainResult::Outcome::paused);
  REQUIRE(c.outcome == TrainResult::Outcome::finished);

  check_same_losses(dir / "whole.jsonl", dir / "parts.jsonl", 24);
  CHECK(c.test_acc == a.test_acc);
  CHECK(c.test_loss == a.test_loss);
}

TEST_CASE("a resume may split the global batch another way: micro 64 x 1 saved, micro 32 x 2 resumed",
          "[trainer][resume]") {
  // Step s covers the same positions of the epoch's order for every split of
  // the global batch (data/sampler.h), so the run continues on the same data:
  // only the summation order of the gradient changes (~1e-7 per step).
  TempDir dir("resplit");
  nlohmann::json j = tiny_synthetic_config();
  j["train_micro_batch_size_per_gpu"] = 64;
  j["gradient_accumulation_steps"] = 1;
  j["training"]["max_steps"] = 24;
  const StopResume r =
      run_stopped_and_resumed(j, dir, 10, nlohmann::json::object(),
                              {{"train_micro_batch_size_per_gpu", 32}, {"gradient_accumulation_steps", 2}});
  REQUIRE(r.whole.outcome == TrainResult::Outcome::finished);
  REQUIRE(r.stopped.outcome == TrainResult::Outcome::paused);
  REQUIRE(r.resumed.outcome == TrainResult::Outcome::finished);
  CHECK_THAT(r.resumed_console, Catch::Contains("was micro 64 x accumulation 1 x world 1 when saved, and "
                                                "continues as micro 32 x accumulation 2 x world 1"));

  const auto expected = losses_by_step(read_jsonl(dir / "whole.jsonl"));
  const auto resumed = losses_by_step(read_jsonl(dir / "parts.jsonl"));
  REQUIRE(resumed.size() == 24);
  for (const auto& [step, loss] : expected) {
    INFO("step " << step);
    if (step <= 10)
      CHECK(resumed.at(step) == loss);
    else
      CHECK(resumed.at(step) == Approx(loss).epsilon(1e-4));
  }
  // The global batch itself may not change.
  nlohmann::json other = j;
  other["train_batch_size"] = 32;
  other["train_micro_batch_size_per_gpu"] = 32;
  other["gradient_accumulation_steps"] = 1;
  other["checkpoint"] = {{"resume", dir / "ckpt"}};
  StopSignal stop;
  std::ostringstream console;
  auto backend = make_cpu_backend(2);
  TrainerIo io;
  io.console = &console;
  io.stop = &stop;
  CHECK_THROWS_WITH(Trainer(resolve_json(other), *backend, io),
                    Catch::Contains("config mismatch: train_batch_size is 64 in the checkpoint but 32"));
}

TEST_CASE("a checkpoint of another configuration is refused naming the key", "[trainer][resume]") {
  TempDir dir("mismatch");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["max_steps"] = 4;
  j["checkpoint"] = {{"save_dir", dir / "ckpt"}};
  StopSignal stop;
  std::ostringstream console;
  run_training(resolve_json(j), stop, console);
  j["checkpoint"]["resume"] = dir / "ckpt";
  j["optimizer"]["params"]["lr"] = 1e-2;
  auto backend = make_cpu_backend(2);
  TrainerIo io;
  io.console = &console;
  io.stop = &stop;
  CHECK_THROWS_WITH(Trainer(resolve_json(j), *backend, io),
                    Catch::Contains("config mismatch: optimizer.params.lr is 0.002 in the checkpoint but 0.01"));
}

TEST_CASE("SIGTERM stops the run at the next step boundary with a loadable checkpoint", "[trainer][signal]") {
  TempDir dir("sigterm");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["max_steps"] = 30;
  j["checkpoint"] = {{"save_dir", dir / "ckpt"}};
  j["logging"] = {{"metrics_out", dir / "m.jsonl"}};
  const TrainConfig config = resolve_json(j);
  StopSignal stop = StopSignal::install();
  std::ostringstream console;
  // The signal arrives while step 7's bookkeeping runs, i.e. inside the loop.
  const TrainResult r = run_training(config, stop, console, [](std::int64_t step) {
    if (step == 7) std::raise(SIGTERM);
  });
  CHECK(r.outcome == TrainResult::Outcome::interrupted);
  CHECK(r.signal == SIGTERM);
  CHECK(r.step == 7);
  REQUIRE_FALSE(r.checkpoint.empty());
  const ParamTable table(config.vit_config(3, 10));
  const Checkpoint ckpt = read_checkpoint(resolve_resume_path(dir / "ckpt"), table);
  CHECK(ckpt.state.step == 7);
  const auto records = read_jsonl(dir / "m.jsonl");
  const nlohmann::json* stopped = find_event(records, "interrupted");
  REQUIRE(stopped);
  CHECK(stopped->at("signal") == SIGTERM);
  CHECK_FALSE(find_event(records, "final"));

  // And the run continues from it to the end.
  stop.clear();
  nlohmann::json again = j;
  again["checkpoint"]["resume"] = "auto";
  const TrainResult rest = run_training(resolve_json(again), stop, console);
  CHECK(rest.outcome == TrainResult::Outcome::finished);
  CHECK(rest.step == 30);
}
