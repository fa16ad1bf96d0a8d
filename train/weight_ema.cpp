#include "train/weight_ema.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace vitscale::train {

WeightEma::WeightEma(ViTModel& model, double decay, bool warmup)
    : model_(model), backend_(model.backend()), decay_(decay), warmup_(warmup) {
  if (!(decay > 0.0 && decay < 1.0))
    throw std::invalid_argument("WeightEma: decay " + std::to_string(decay) + " is outside (0, 1)");
  if (!model.resident_params())
    throw std::invalid_argument("WeightEma: the model's weights are sharded (ZeRO-3); the average needs them whole");
  const TensorView params = model.complete_params();
  average_buffer_ = backend_.allocate(params.bytes(), "weight average (EMA)");
  live_buffer_ = backend_.allocate(params.bytes(), "live weights while the EMA is evaluated");
  average_ = TensorView(average_buffer_.get(), DType::f32, {params.numel()});
  backend_.copy_device(average_.data, params.data, params.bytes());
}

float WeightEma::decay_at(double decay, bool warmup, std::int64_t step) {
  double d = decay;
  if (warmup) d = std::min(d, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
  return static_cast<float>(d);
}

void WeightEma::step_done(std::int64_t step) {
  settle();  // (never owed here: each step settles before its optimizer phase)
  owed_step_ = step;
}

void WeightEma::settle() {
  if (owed_step_ == 0) return;
  backend_.weight_ema(average_, model_.complete_params(), decay_at(decay_, warmup_, owed_step_));
  owed_step_ = 0;
}

void WeightEma::with_average(const std::function<void()>& fn) {
  settle();
  const TensorView params = model_.complete_params();
  backend_.copy_device(live_buffer_.get(), params.data, params.bytes());
  backend_.copy_device(params.data, average_.data, params.bytes());
  model_.sync_compute_params();
  // The live weights come back even when fn throws (a signal's stop is not an
  // exception, but a failed evaluation should not leave the average in place).
  struct Restore {
    WeightEma& e;
    TensorView params;
    ~Restore() {
      e.backend_.copy_device(params.data, e.live_buffer_.get(), params.bytes());
      e.model_.sync_compute_params();
    }
  } restore{*this, params};
  fn();
}

void WeightEma::expect_size(const char* op, std::size_t floats) const {
  if (static_cast<std::int64_t>(floats) != average_.numel())
    throw std::invalid_argument(std::string("WeightEma::") + op + ": " + std::to_string(floats) +
                                " floats for an average of " + std::to_string(average_.numel()));
}

void WeightEma::read(std::span<float> host) {
  settle();
  expect_size("read", host.size());
  backend_.copy_to_host(host.data(), average_.data, average_.bytes());
}

void WeightEma::write(std::span<const float> host) {
  expect_size("write", host.size());
  backend_.copy_to_device(average_.data, host.data(), average_.bytes());
  backend_.synchronize();
  owed_step_ = 0;
}

}  // namespace vitscale::train
