// lr_schedule_test.cpp — warmup then cosine, DeepSpeed's WarmupCosineLR semantics.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "train/lr_schedule.h"
#include "train/train_config.h"

using namespace vitscale::train;

TEST_CASE("linear warmup rises to the peak, cosine falls to cos_min_ratio at the last step", "[lr]") {
  LrScheduleSpec s;
  s.base_lr = 1e-3;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.cos_min_ratio = 0.01;
  const LrSchedule lr(s);
  CHECK(lr.lr(1) == Approx(1e-4));
  CHECK(lr.lr(5) == Approx(5e-4));
  CHECK(lr.lr(10) == Approx(1e-3));  // the peak at the end of warmup
  CHECK(lr.lr(60) == Approx(1e-3 * (0.01 + 0.99 * 0.5)));  // half-way through the cosine
  CHECK(lr.lr(110) == Approx(1e-5));
  CHECK(lr.lr(500) == Approx(1e-5));  // past the end: stays at the floor
  for (int t = 11; t < 110; ++t) CHECK(lr.lr(t + 1) <= lr.lr(t));  // monotone decay
}

TEST_CASE("warmup_min_ratio and log warmup follow DeepSpeed", "[lr]") {
  LrScheduleSpec s;
  s.base_lr = 2.0;
  s.warmup_steps = 100;
  s.total_steps = 1000;
  s.warmup_min_ratio = 0.1;
  s.log_warmup = true;
  const LrSchedule lr(s);
  CHECK(lr.lr(1) == Approx(0.2));  // log(1) = 0: the minimum
  CHECK(lr.lr(10) == Approx(2.0 * (0.1 + 0.9 * std::log(10.0) / std::log(100.0))));
  CHECK(lr.lr(100) == Approx(2.0));
}

TEST_CASE("no warmup starts at the peak, and impossible specs are refused", "[lr]") {
  LrScheduleSpec s;
  s.base_lr = 1.0;
  s.warmup_steps = 0;
  s.total_steps = 4;
  const LrSchedule lr(s);
  CHECK(lr.lr(1) == Approx(0.5 * (1 + std::cos(3.14159265358979 / 4))));
  CHECK(lr.lr(4) == Approx(0.0).margin(1e-12));
  s.total_steps = 0;
  CHECK_THROWS_WITH(LrSchedule(s), Catch::Contains("total steps"));
  s.total_steps = 5;
  s.base_lr = -1;
  CHECK_THROWS_WITH(LrSchedule(s), Catch::Contains("base lr"));
}

// The schedules below are resolved from configs as DeepSpeed users write them
// and checked update by update against DeepSpeed's documented formulas, written
// out here for DeepSpeed's batch index i = s - 1 of update s.
namespace {

LrSchedule resolved_schedule(const nlohmann::json& j, std::int64_t steps_per_epoch, std::int64_t run_steps) {
  const TrainConfig c = resolve(parse_config_json(j, "ds.json"), {});
  return LrSchedule(lr_schedule_spec(c, steps_per_epoch, run_steps));
}

}  // namespace

TEST_CASE("WarmupLR (CIFAR-10 example): log warmup from warmup_min_lr to warmup_max_lr, then flat", "[lr][deepspeed]") {
  const LrSchedule lr = resolved_schedule(nlohmann::json::parse(R"({
    "train_batch_size": 4,
    "optimizer": {"type": "Adam", "params": {"lr": 0.001, "betas": [0.8, 0.999], "eps": 1e-8, "weight_decay": 3e-7}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": 0.001, "warmup_num_steps": 1000}}
  })"),
                                          100, 5000);
  for (std::int64_t s = 1; s <= 1500; ++s) {
    const std::int64_t i = s - 1;
    const double expected = i < 1000 ? 0.0 + (0.001 - 0.0) * std::log(i + 1.0) / std::log(1000.0) : 0.001;
    INFO("update " << s);
    REQUIRE(lr.lr(s) == Approx(expected).margin(1e-15));
  }
  CHECK(lr.lr(1) == 0.0);  // DeepSpeed's first rate: log(1) = 0, the minimum
  CHECK_FALSE(lr.betas(1));
}

TEST_CASE("WarmupLR linear: warmup_min_lr + (max - min) * i / W, W at least 2", "[lr][deepspeed]") {
  const LrSchedule lr = resolved_schedule(nlohmann::json::parse(R"({"scheduler": {"type": "WarmupLR", "params":
    {"warmup_min_lr": 0.1, "warmup_max_lr": 1.0, "warmup_num_steps": 10, "warmup_type": "linear"}}})"),
                                          10, 100);
  for (std::int64_t s = 1; s <= 30; ++s) {
    const std::int64_t i = s - 1;
    INFO("update " << s);
    CHECK(lr.lr(s) == Approx(i < 10 ? 0.1 + 0.9 * static_cast<double>(i) / 10.0 : 1.0));
  }
  // warmup_num_steps 1 is DeepSpeed's max(2, 1) = 2: the minimum, then the maximum.
  const LrSchedule short_warmup = resolved_schedule(nlohmann::json::parse(R"({"scheduler": {"type": "WarmupLR",
    "params": {"warmup_min_lr": 0.5, "warmup_max_lr": 2.0, "warmup_num_steps": 1}}})"),
                                                    10, 100);
  CHECK(short_warmup.lr(1) == Approx(0.5));
  CHECK(short_warmup.lr(2) == Approx(2.0));
  CHECK(short_warmup.lr(3) == Approx(2.0));
}

TEST_CASE("WarmupDecayLR: warmup, then a linear decay that reaches 0 at total_num_steps", "[lr][deepspeed]") {
  const LrSchedule lr = resolved_schedule(nlohmann::json::parse(R"({
    "optimizer": {"params": {"lr": 0.02}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 10, "total_num_steps": 100,
                  "warmup_type": "linear"}}})"),
                                          10, 100);
  for (std::int64_t s = 1; s <= 120; ++s) {
    const std::int64_t i = s - 1;
    const double gamma = i < 10 ? static_cast<double>(i) / 10.0 : std::max(0.0, (100.0 - i) / (100.0 - 10.0));
    INFO("update " << s);
    CHECK(lr.lr(s) == Approx(0.0 + 0.02 * gamma).margin(1e-15));  // warmup_max_lr unset: optimizer.params.lr
  }
  CHECK(lr.lr(11) == Approx(0.02));        // i = 10: the peak
  CHECK(lr.lr(101) == 0.0);                // i = total_num_steps: zero
  CHECK(lr.lr(100) == Approx(0.02 / 90));  // the last nonzero rate
  // Default warmup_type is DeepSpeed's log; total_num_steps unset is the run's length.
  const LrSchedule log_decay = resolved_schedule(nlohmann::json::parse(R"({"optimizer": {"params": {"lr": 1.0}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 8}}})"),
                                                 10, 40);
  CHECK(log_decay.lr(4) == Approx(std::log(4.0) / std::log(8.0)));
  CHECK(log_decay.lr(21) == Approx((40.0 - 20.0) / (40.0 - 8.0)));
}

TEST_CASE("OneCycle: up in cycle_first_step_size, down in cycle_second_step_size, then decay, beta1 cycles inversely",
          "[lr][deepspeed]") {
  const LrSchedule lr = resolved_schedule(nlohmann::json::parse(R"({"scheduler": {"type": "OneCycle", "params": {
    "cycle_min_lr": 0.1, "cycle_max_lr": 1.0, "cycle_first_step_size": 4, "cycle_second_step_size": 6,
    "decay_step_size": 2, "decay_lr_rate": 0.5, "cycle_min_mom": 0.85, "cycle_max_mom": 0.95,
    "decay_mom_rate": 0.01}}})"),
                                          10, 100);
  for (std::int64_t s = 1; s <= 40; ++s) {
    // The cycle's position: up over updates 1..4, down over 5..10 (back at the minimum at 10).
    const double scale = s <= 4 ? s / 4.0 : s <= 10 ? (10.0 - s) / 6.0 : 0.0;
    const double d = static_cast<double>(s - 10);  // updates into the decay
    const double expected_lr = s <= 10 ? 0.1 + 0.9 * scale : 0.1 / (1.0 + 0.5 * d / 2.0);
    const double expected_beta1 = s <= 10 ? 0.95 - 0.1 * scale : 0.95 * (1.0 + 0.01 * d / 2.0);
    INFO("update " << s);
    CHECK(lr.lr(s) == Approx(expected_lr));
    const auto betas = lr.betas(s);
    REQUIRE(betas);
    CHECK(betas->first == Approx(expected_beta1));
    CHECK(betas->second == 0.99);  // DeepSpeed pairs the cycled beta1 with beta2 0.99
  }
  CHECK(lr.lr(4) == Approx(1.0));
  CHECK(lr.lr(10) == Approx(0.1));
}

TEST_CASE("OneCycle stairs hold the rate flat, no decay keeps cycle_min_lr, cycle_momentum false leaves the betas",
          "[lr][deepspeed]") {
  const LrSchedule stairs = resolved_schedule(nlohmann::json::parse(R"({"scheduler": {"type": "OneCycle", "params": {
    "cycle_min_lr": 0.0, "cycle_max_lr": 1.0, "cycle_first_step_size": 4, "cycle_first_stair_count": 2,
    "cycle_momentum": false}}})"),
                                              10, 100);
  // 2 stairs over 4 updates: floor(s * 2 / 4) / 2 rising, floor((8 - s) * 2 / 4) / 2 falling.
  const double expected[] = {0.0, 0.5, 0.5, 1.0, 0.5, 0.5, 0.0, 0.0};
  for (std::int64_t s = 1; s <= 8; ++s) {
    INFO("update " << s);
    CHECK(stairs.lr(s) == Approx(expected[s - 1]).margin(1e-15));
  }
  CHECK(stairs.lr(50) == 0.0);  // decay_step_size 0: no decay, the minimum
  CHECK_FALSE(stairs.betas(3));
}
