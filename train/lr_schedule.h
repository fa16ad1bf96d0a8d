// lr_schedule.h — DeepSpeed's learning-rate schedulers as pure functions of the
// optimizer update number s = 1, 2, ... (the 1-based step AdamW's bias
// correction also uses). DeepSpeed counts its scheduler's batch index from 0;
// here update s runs at DeepSpeed's index i = s - 1, so the first update uses
// the formula's first value.
//
// WarmupCosineLR (vitscale's default; W warmup steps, N total):
//   warmup (s <= W):   ratio = warmup_min_ratio + (1 - warmup_min_ratio) * g,
//                      g = s / W (linear; vitscale's default) or log(s) / log(W) (log; W > 1)
//   decay  (s > W):    p = (s - W) / (N - W) clamped to [0, 1]
//                      ratio = cos_min_ratio + (1 - cos_min_ratio) * (1 + cos(pi * p)) / 2
//   lr(s) = base_lr * ratio
// (linear warmup is s / W rather than DeepSpeed's i / W, so the first update
// already moves; the rest is DeepSpeed's formula with i = s - 1).
//
// WarmupLR (W' = max(2, W), as DeepSpeed):
//   gamma = log(i + 1) / log(W') (log, DeepSpeed's default) or i / W' (linear) while i < W', else 1
//   lr = warmup_min_lr + (warmup_max_lr - warmup_min_lr) * gamma
// WarmupDecayLR: WarmupLR's warmup, then gamma = max(0, (N - i) / max(1, N - W')),
//   a linear decay that reaches 0 at i = N.
// OneCycle (F = cycle_first_step_size, S = cycle_second_step_size, T = F + S):
//   i < T:  x = ((i + 1) mod T) / T; scale = x / (F/T) rising, (1 - x) / (1 - F/T) falling;
//           with a stair count c > 0 the half-cycle's position is floored to 1/c steps;
//           lr = cycle_min_lr + (cycle_max_lr - cycle_min_lr) * scale
//           beta1 = cycle_max_mom - (cycle_max_mom - cycle_min_mom) * scale, beta2 = 0.99 (cycle_momentum)
//   i >= T: d = i - T + 1; lr = cycle_min_lr / (1 + decay_lr_rate * d / decay_step_size)
//           beta1 = cycle_max_mom * (1 + decay_mom_rate * d / decay_step_size)
//           (no decay, lr = cycle_min_lr and beta1 = cycle_max_mom, when decay_step_size or the rate is 0)
// A resumed run gets the same rates without storing any scheduler state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace vitscale::train {

enum class LrScheduleKind { warmup_cosine, warmup, warmup_decay, one_cycle };

struct OneCycleSpec {
  double min_lr = 0.0, max_lr = 1e-3, decay_lr_rate = 0.0;
  std::int64_t first_step_size = 2000, second_step_size = 2000;
  std::int64_t first_stair_count = 0, second_stair_count = 0;
  std::int64_t decay_step_size = 0;
  bool cycle_momentum = true;
  double min_mom = 0.8, max_mom = 0.9, decay_mom_rate = 0.0;
};

struct LrScheduleSpec {
  LrScheduleKind kind = LrScheduleKind::warmup_cosine;
  double base_lr = 1e-3;          // WarmupCosineLR's peak
  std::int64_t warmup_steps = 0;  // W
  std::int64_t total_steps = 1;   // N (>= 1)
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0;
  bool log_warmup = false;
  double warmup_min_lr = 0.0, warmup_max_lr = 1e-3;  // WarmupLR, WarmupDecayLR
  OneCycleSpec one_cycle;
};

class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleSpec& spec);  // throws std::invalid_argument on an impossible spec
  double lr(std::int64_t step) const;               // step: 1-based update number
  // AdamW's (beta1, beta2) at `step` when the schedule sets them (OneCycle with
  // cycle_momentum), else nullopt: the optimizer's own betas hold.
  std::optional<std::pair<double, double>> betas(std::int64_t step) const;
  const LrScheduleSpec& spec() const { return spec_; }
  std::string describe() const;

 private:
  double one_cycle_scale(std::int64_t step) const;  // OneCycle's position in its cycle, 0..1
  LrScheduleSpec spec_;
};

struct TrainConfig;
// The schedule a resolved config asks for, for a run of `run_steps` updates of
// `steps_per_epoch` per epoch (warmup_num_steps -1: training.warmup_epochs
// epochs; total_num_steps 0: the run's length; the WarmupCosineLR warmup is
// capped at the total).
LrScheduleSpec lr_schedule_spec(const TrainConfig& config, std::int64_t steps_per_epoch, std::int64_t run_steps);

}  // namespace vitscale::train
