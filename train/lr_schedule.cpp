#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "train/train_config.h"

namespace vitscale::train {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kOneCycleBeta2 = 0.99;  // DeepSpeed's OneCycle pairs its cycled beta1 with this beta2

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument("lr schedule: " + what); }

// WarmupLR's gamma during warmup for DeepSpeed's 0-based index i (W' = max(2, W)).
double warmup_gamma(std::int64_t i, std::int64_t warmup, bool log_warmup) {
  const auto w = static_cast<double>(warmup);
  return log_warmup ? std::log(static_cast<double>(i + 1)) / std::log(w) : static_cast<double>(i) / w;
}

}  // namespace

LrSchedule::LrSchedule(const LrScheduleSpec& spec) : spec_(spec) {
  if (!(spec.base_lr > 0) || !std::isfinite(spec.base_lr))
    invalid("base lr must be positive, got " + std::to_string(spec.base_lr));
  if (spec.total_steps < 1) invalid("total steps must be at least 1, got " + std::to_string(spec.total_steps));
  if (spec.warmup_steps < 0) invalid("warmup steps must not be negative, got " + std::to_string(spec.warmup_steps));
  const OneCycleSpec& oc = spec.one_cycle;
  if (spec.kind == LrScheduleKind::one_cycle) {
    if (oc.first_step_size < 1 || oc.second_step_size < 1)
      invalid("OneCycle's step sizes must be at least 1, got " + std::to_string(oc.first_step_size) + " and " +
              std::to_string(oc.second_step_size));
    if (oc.first_stair_count < 0 || oc.second_stair_count < 0 || oc.decay_step_size < 0)
      invalid("OneCycle's stair counts and decay_step_size must not be negative");
  }
}

double LrSchedule::one_cycle_scale(std::int64_t step) const {
  const OneCycleSpec& oc = spec_.one_cycle;
  const std::int64_t first = oc.first_step_size, second = oc.second_step_size, total = first + second;
  const std::int64_t position = step % total;  // DeepSpeed's (i + 1) within the cycle
  const bool rising = position <= first;
  const std::int64_t stairs = rising ? oc.first_stair_count : oc.second_stair_count;
  if (stairs > 0) {
    const double stair = rising ? static_cast<double>(position * stairs) / static_cast<double>(first)
                                : static_cast<double>((total - position) * stairs) / static_cast<double>(second);
    return std::floor(stair) / static_cast<double>(stairs);
  }
  const double x = static_cast<double>(position) / static_cast<double>(total);
  const double ratio = static_cast<double>(first) / static_cast<double>(total);
  return rising ? x / ratio : (x - 1.0) / (ratio - 1.0);
}

double LrSchedule::lr(std::int64_t step) const {
  const auto& s = spec_;
  if (step < 1) step = 1;
  const std::int64_t i = step - 1;  // DeepSpeed's batch index
  switch (s.kind) {
    case LrScheduleKind::warmup:
    case LrScheduleKind::warmup_decay: {
      const std::int64_t warmup = std::max<std::int64_t>(2, s.warmup_steps);
      double gamma = 1.0;
      if (i < warmup)
        gamma = warmup_gamma(i, warmup, s.log_warmup);
      else if (s.kind == LrScheduleKind::warmup_decay)
        gamma = std::max(0.0, static_cast<double>(s.total_steps - i) /
                                  static_cast<double>(std::max<std::int64_t>(1, s.total_steps - warmup)));
      return s.warmup_min_lr + (s.warmup_max_lr - s.warmup_min_lr) * gamma;
    }
    case LrScheduleKind::one_cycle: {
      const OneCycleSpec& oc = s.one_cycle;
      const std::int64_t cycle = oc.first_step_size + oc.second_step_size;
      if (i < cycle) return oc.min_lr + (oc.max_lr - oc.min_lr) * one_cycle_scale(step);
      if (oc.decay_step_size == 0 || oc.decay_lr_rate == 0) return oc.min_lr;
      const double intervals = static_cast<double>(step - cycle) / static_cast<double>(oc.decay_step_size);
      return oc.min_lr / (1.0 + oc.decay_lr_rate * intervals);
    }
    case LrScheduleKind::warmup_cosine:
      break;
  }
  const std::int64_t W = s.warmup_steps;
  if (step <= W) {
    double g = 1.0;
    if (s.log_warmup)
      g = W > 1 ? std::log(static_cast<double>(step)) / std::log(static_cast<double>(W)) : 1.0;
    else
      g = static_cast<double>(step) / static_cast<double>(W);
    return s.base_lr * (s.warmup_min_ratio + (1.0 - s.warmup_min_ratio) * g);
  }
  const std::int64_t span = s.total_steps - W;
  const double p = span > 0 ? std::clamp(static_cast<double>(step - W) / static_cast<double>(span), 0.0, 1.0) : 1.0;
  return s.base_lr * (s.cos_min_ratio + (1.0 - s.cos_min_ratio) * 0.5 * (1.0 + std::cos(kPi * p)));
}

std::optional<std::pair<double, double>> LrSchedule::betas(std::int64_t step) const {
  const OneCycleSpec& oc = spec_.one_cycle;
  if (spec_.kind != LrScheduleKind::one_cycle || !oc.cycle_momentum) return std::nullopt;
  if (step < 1) step = 1;
  const std::int64_t cycle = oc.first_step_size + oc.second_step_size;
  if (step - 1 < cycle)
    return std::pair{oc.max_mom - (oc.max_mom - oc.min_mom) * one_cycle_scale(step), kOneCycleBeta2};
  if (oc.decay_step_size == 0 || oc.decay_mom_rate == 0) return std::pair{oc.max_mom, kOneCycleBeta2};
  const double intervals = static_cast<double>(step - cycle) / static_cast<double>(oc.decay_step_size);
  return std::pair{oc.max_mom * (1.0 + oc.decay_mom_rate * intervals), kOneCycleBeta2};
}

std::string LrSchedule::describe() const {
  const auto& s = spec_;
  const char* warmup = s.log_warmup ? "log" : "linear";
  std::ostringstream o;
  switch (s.kind) {
    case LrScheduleKind::warmup_cosine:
      o << "lr " << s.base_lr << ": " << warmup << " warmup " << s.warmup_steps << " steps from " << s.warmup_min_ratio
        << "x, cosine to " << s.cos_min_ratio << "x at step " << s.total_steps;
      break;
    case LrScheduleKind::warmup:
    case LrScheduleKind::warmup_decay:
      o << (s.kind == LrScheduleKind::warmup ? "WarmupLR" : "WarmupDecayLR") << ": " << warmup << " warmup "
        << std::max<std::int64_t>(2, s.warmup_steps) << " steps from " << s.warmup_min_lr << " to " << s.warmup_max_lr;
      if (s.kind == LrScheduleKind::warmup_decay) o << ", linear decay to 0 at step " << s.total_steps + 1;
      break;
    case LrScheduleKind::one_cycle: {
      const OneCycleSpec& oc = s.one_cycle;
      o << "OneCycle: " << oc.min_lr << " -> " << oc.max_lr << " in " << oc.first_step_size << " steps, back in "
        << oc.second_step_size;
      if (oc.decay_step_size > 0 && oc.decay_lr_rate != 0)
        o << ", then / (1 + " << oc.decay_lr_rate << " x steps / " << oc.decay_step_size << ")";
      if (oc.cycle_momentum) o << "; beta1 " << oc.max_mom << " -> " << oc.min_mom << " (beta2 0.99)";
      break;
    }
  }
  return o.str();
}

LrScheduleSpec lr_schedule_spec(const TrainConfig& c, std::int64_t steps_per_epoch, std::int64_t run_steps) {
  LrScheduleSpec spec;
  spec.base_lr = c.lr;
  spec.total_steps = c.total_num_steps > 0 ? c.total_num_steps : run_steps;
  spec.warmup_steps =
      c.warmup_steps >= 0
          ? c.warmup_steps
          : static_cast<std::int64_t>(std::llround(c.warmup_epochs * static_cast<double>(steps_per_epoch)));
  spec.warmup_min_ratio = c.warmup_min_ratio;
  spec.cos_min_ratio = c.cos_min_ratio;
  spec.log_warmup = c.warmup_type == "log";
  spec.warmup_min_lr = c.warmup_min_lr;
  spec.warmup_max_lr = c.warmup_max_lr;
  if (c.scheduler_type == "WarmupLR") {
    spec.kind = LrScheduleKind::warmup;
  } else if (c.scheduler_type == "WarmupDecayLR") {
    spec.kind = LrScheduleKind::warmup_decay;
  } else if (c.scheduler_type == "OneCycle") {
    spec.kind = LrScheduleKind::one_cycle;
    OneCycleSpec& oc = spec.one_cycle;
    oc.min_lr = c.cycle_min_lr, oc.max_lr = c.cycle_max_lr, oc.decay_lr_rate = c.decay_lr_rate;
    oc.first_step_size = c.cycle_first_step_size, oc.second_step_size = c.cycle_second_step_size;
    oc.first_stair_count = c.cycle_first_stair_count, oc.second_stair_count = c.cycle_second_stair_count;
    oc.decay_step_size = c.decay_step_size;
    oc.cycle_momentum = c.cycle_momentum;
    oc.min_mom = c.cycle_min_mom, oc.max_mom = c.cycle_max_mom, oc.decay_mom_rate = c.decay_mom_rate;
  } else {
    spec.warmup_steps = std::min(spec.warmup_steps, spec.total_steps);  // WarmupCosineLR
  }
  return spec;
}

}  // namespace vitscale::train
