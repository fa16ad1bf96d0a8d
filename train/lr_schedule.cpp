#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace vitscale::train {

LrSchedule::LrSchedule(const LrScheduleSpec& spec) : spec_(spec) {
  if (!(spec.base_lr > 0) || !std::isfinite(spec.base_lr))
    throw std::invalid_argument("lr schedule: base lr must be positive, got " + std::to_string(spec.base_lr));
  if (spec.total_steps < 1)
    throw std::invalid_argument("lr schedule: total steps must be at least 1, got " + std::to_string(spec.total_steps));
  if (spec.warmup_steps < 0)
    throw std::invalid_argument("lr schedule: warmup steps must not be negative, got " +
                                std::to_string(spec.warmup_steps));
}

double LrSchedule::lr(std::int64_t step) const {
  const auto& s = spec_;
  const std::int64_t W = s.warmup_steps;
  if (step < 1) step = 1;
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
  constexpr double kPi = 3.14159265358979323846;
  return s.base_lr * (s.cos_min_ratio + (1.0 - s.cos_min_ratio) * 0.5 * (1.0 + std::cos(kPi * p)));
}

std::string LrSchedule::describe() const {
  std::ostringstream o;
  o << "lr " << spec_.base_lr << ": " << (spec_.log_warmup ? "log" : "linear") << " warmup " << spec_.warmup_steps
    << " steps from " << spec_.warmup_min_ratio << "x, cosine to " << spec_.cos_min_ratio << "x at step "
    << spec_.total_steps;
  return o.str();
}

}  // namespace vitscale::train
