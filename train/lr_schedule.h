// lr_schedule.h — DeepSpeed's WarmupCosineLR: warmup, then cosine decay.
//
// For the optimizer update number s = 1, 2, ... (the 1-based step AdamW's bias
// correction also uses):
//   warmup (s <= W):   ratio = warmup_min_ratio + (1 - warmup_min_ratio) * g,
//                      g = s / W (linear) or log(s) / log(W) (log, DeepSpeed's default; W > 1)
//   decay  (s > W):    p = (s - W) / (N - W) clamped to [0, 1]
//                      ratio = cos_min_ratio + (1 - cos_min_ratio) * (1 + cos(pi * p)) / 2
//   lr(s) = base_lr * ratio
// so the first update already moves (warmup starts above zero unless
// warmup_min_ratio = 0 and W is large), the peak is reached at s = W, and the
// last update s = N runs at cos_min_ratio * base_lr. A pure function of s: a
// resumed run gets the same rates without storing any scheduler state.
#pragma once

#include <cstdint>
#include <string>

namespace vitscale::train {

struct LrScheduleSpec {
  double base_lr = 1e-3;
  std::int64_t warmup_steps = 0;  // W
  std::int64_t total_steps = 1;   // N (>= 1)
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0;
  bool log_warmup = false;
};

class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleSpec& spec);  // throws std::invalid_argument on an impossible spec
  double lr(std::int64_t step) const;               // step: 1-based update number
  const LrScheduleSpec& spec() const { return spec_; }
  std::string describe() const;

 private:
  LrScheduleSpec spec_;
};

}  // namespace vitscale::train
