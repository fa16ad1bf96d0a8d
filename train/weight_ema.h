// weight_ema.h — an exponential moving average of the weights, evaluated and
// exported in their place (timm's ModelEma; `training.ema_decay`, --ema-decay).
//
// After optimizer step t the average takes the step's weights:
//   ema ← d_t·ema + (1 − d_t)·params,  d_t = min(decay, (1 + t) / (10 + t)) with the warm-up
//   (TensorFlow's ExponentialMovingAverage num_updates rule), else d_t = decay,
// starting from the weights the run starts from. d_t is a pure function of t,
// so a resumed run continues the average bit for bit.
//
// The update is owed at the step's end and paid just before the next step's
// optimizer phase (or before an evaluation, a checkpoint or the export). By
// then the forward has waited for every part of a ZeRO-1/2 all-gather, so
// the average never makes the optimizer's gather overlap less. The average
// only reads the weights: training computes the same bits with it or without.
//
// Memory: two flat f32 buffers of the weights' size on the device, the
// average (n) and the live weights' copy while the average is swapped in
// (n); MemoryPlan::ema counts both. ZeRO-3 keeps no full copy of the weights
// on any rank, so resolve() refuses the average there.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "runtime/buffer.h"
#include "runtime/tensor.h"
#include "runtime/vit_model.h"

namespace vitscale::train {

class WeightEma {
 public:
  // decay in (0, 1). The average starts as the model's weights at this call.
  WeightEma(ViTModel& model, double decay, bool warmup);

  // d_t of step t (1-based).
  static float decay_at(double decay, bool warmup, std::int64_t step);

  // Optimizer step `step` is done: its update is owed (paid by settle()).
  void step_done(std::int64_t step);
  // Pays an owed update from the model's current (complete) weights.
  void settle();
  // Runs fn with the model holding the average; the live weights are put back after.
  void with_average(const std::function<void()>& fn);

  // The average as the checkpoint stores it (settles first) and as it is restored.
  void read(std::span<float> host);
  void write(std::span<const float> host);

  // What the two buffers take, for the memory plan before they exist.
  static std::size_t planned_bytes(const ParamTable& table) {
    return 2 * static_cast<std::size_t>(table.total_numel()) * sizeof(float);
  }

 private:
  // Refuses a host buffer of another length than the average, naming `op`.
  void expect_size(const char* op, std::size_t floats) const;

  ViTModel& model_;
  Backend& backend_;
  double decay_;
  bool warmup_;
  Buffer average_buffer_, live_buffer_;
  TensorView average_;          // (n) f32
  std::int64_t owed_step_ = 0;  // the step whose update is owed; 0: none
};

}  // namespace vitscale::train
