// lr_schedule_test.cpp — warmup then cosine, DeepSpeed's WarmupCosineLR semantics.
#include <catch2/catch.hpp>

#include <cmath>

#include "train/lr_schedule.h"

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
