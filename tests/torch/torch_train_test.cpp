// vit_torch_train (the LibTorch recipe baseline) trains the same run as
// vit_train: same initial weights, same batches, same schedule, so the first
// step's loss agrees to float rounding and the next steps stay close; what it
// cannot do it refuses by flag.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "tests/train/train_util.h"

#if defined(VIT_TRAIN_EXE) && defined(VIT_TORCH_TRAIN_EXE)

using namespace vitscale::train::testing;

namespace {

// 16x16 RGB synthetic images of 4 classes, a 2-block ViT of width 32, 8 steps
// of 64 images with crop, flip and label smoothing on (the batches carry them).
const std::string kRecipe =
    "--dataset synthetic --synthetic-train 512 --synthetic-test 200 --synthetic-image-size 16 --synthetic-classes 4 "
    "--image-size 16 --patch-size 4 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --train-batch-size 64 "
    "--epochs 1 --crop-padding 1 --lr 2e-3 --warmup-steps 2 --seed 5 --steps-per-print 1 --threads 1";

}  // namespace

TEST_CASE("vit_torch_train runs vit_train's recipe: the same losses step by step, the same evaluation", "[torch_train]") {
  TempDir dir("torch_train");
  const ProgramRun ours = run_program(VIT_TRAIN_EXE, kRecipe + " --device cpu --metrics-out " + (dir / "ours.jsonl"), dir);
  INFO(ours.out << ours.err);
  REQUIRE(ours.exit_code == 0);
  const ProgramRun torch = run_program(VIT_TORCH_TRAIN_EXE, kRecipe + " --metrics-out " + (dir / "torch.jsonl"), dir);
  INFO(torch.out << torch.err);
  REQUIRE(torch.exit_code == 0);

  const auto our_records = read_jsonl(dir / "ours.jsonl"), torch_records = read_jsonl(dir / "torch.jsonl");
  const auto a = losses_by_step(our_records), b = losses_by_step(torch_records);
  REQUIRE(a.size() == 8);  // 512 images / 64
  REQUIRE(b.size() == a.size());
  // Step 1: the same weights on the same batch, before any update.
  CHECK(std::abs(b.at(1) - a.at(1)) <= 1e-5 * std::abs(a.at(1)));
  // Later steps: float differences in the updates, nothing more (a different
  // batch order, schedule or initialisation moves the loss by far more).
  for (const auto& [step, loss] : a) {
    INFO("step " << step << ": vit_train " << loss << ", vit_torch_train " << b.at(step));
    CHECK(std::abs(b.at(step) - loss) <= 2e-3 * std::abs(loss));
  }
  CHECK(a.at(8) != a.at(1));  // the updates took effect (8 steps are too few to promise a lower loss)

  const auto* our_eval = find_event(our_records, "eval");
  const auto* torch_eval = find_event(torch_records, "eval");
  REQUIRE(our_eval);
  REQUIRE(torch_eval);
  CHECK(torch_eval->at("images") == 200);
  CHECK(our_eval->at("images") == 200);
  CHECK(std::abs(torch_eval->at("test_acc").get<double>() - our_eval->at("test_acc").get<double>()) <= 0.02);
  const auto* final_record = find_event(torch_records, "final");
  REQUIRE(final_record);
  CHECK(final_record->contains("time_to_acc"));
  CHECK(final_record->at("steps") == 8);
}

TEST_CASE("vit_torch_train keeps vit_train's weight average: live weights untouched, the average near vit_train's",
          "[torch_train][ema]") {
  TempDir dir("torch_train_ema");
  const std::string ema = kRecipe + " --ema-decay 0.9";
  const ProgramRun plain = run_program(VIT_TORCH_TRAIN_EXE, kRecipe + " --metrics-out " + (dir / "plain.jsonl"), dir);
  REQUIRE(plain.exit_code == 0);
  const ProgramRun torch = run_program(VIT_TORCH_TRAIN_EXE, ema + " --metrics-out " + (dir / "torch.jsonl"), dir);
  INFO(torch.out << torch.err);
  REQUIRE(torch.exit_code == 0);
  const ProgramRun ours = run_program(VIT_TRAIN_EXE, ema + " --device cpu --metrics-out " + (dir / "ours.jsonl"), dir);
  REQUIRE(ours.exit_code == 0);
  const auto plain_records = read_jsonl(dir / "plain.jsonl"), torch_records = read_jsonl(dir / "torch.jsonl"),
             our_records = read_jsonl(dir / "ours.jsonl");
  check_same_losses(dir / "plain.jsonl", dir / "torch.jsonl", 8);  // the average changes no step
  const auto *plain_eval = find_event(plain_records, "eval"), *torch_eval = find_event(torch_records, "eval"),
             *our_eval = find_event(our_records, "eval");
  REQUIRE(plain_eval);
  REQUIRE(torch_eval);
  REQUIRE(our_eval);
  CHECK(torch_eval->at("weights") == "ema");
  CHECK(torch_eval->at("live_test_loss") == plain_eval->at("test_loss"));
  CHECK(torch_eval->at("test_loss") != plain_eval->at("test_loss"));  // the average was evaluated
  // The same average of nearly the same weights: the losses agree closely.
  const double a = our_eval->at("test_loss").get<double>(), b = torch_eval->at("test_loss").get<double>();
  CHECK(std::abs(a - b) <= 2e-3 * std::abs(a));
}

TEST_CASE("vit_torch_train refuses what the baseline does not do, naming the flag", "[torch_train]") {
  TempDir dir("torch_train_refusals");
  const std::vector<std::string> flags = {"--zero-stage 1", "--gradient-accumulation-steps 2 --micro-batch-size 32",
                                          "--save-dir " + (dir / "ckpt"), "--export-model " + (dir / "model")};
  for (const std::string& flag : flags) {
    const ProgramRun r = run_program(VIT_TORCH_TRAIN_EXE, kRecipe + " " + flag, dir);
    INFO(flag << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(flag.substr(0, flag.find(' '))) != std::string::npos);
    CHECK(r.err.find("not supported by vit_torch_train") != std::string::npos);
  }
}

#endif
