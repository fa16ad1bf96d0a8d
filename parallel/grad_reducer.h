// grad_reducer.h — the bucketed gradient reducer, overlapped with backward.
//
// The model's backward tells the reducer (a GradReadyListener) how far down
// the flat gradient buffer is final; every bucket whose slice lies at or above
// that watermark is launched on the communicator at once, so its reduction
// runs while backward computes the layers below it. finish() launches what is
// left, waits for everything and reports the step's timing.
//
// Per optimizer step (k micro-steps of gradient accumulation):
//   for each micro-step i:  reducer.begin_step(i == k-1);
//                           model.forward(...); model.backward(&reducer);
//   reducer.finish();       // after the last micro-step's backward
// On micro-steps that are not the last, grads_ready_from() does nothing: the
// gradients only accumulate (+=) locally — PyTorch's no_sync, without the
// context manager.
//
// Gradients are summed, not averaged: the trainer scales the loss by
// 1 / (micro_batch · k · world_size), so the sum is the global-batch mean.
//
// ZeRO-1 mode reduce-scatters each bucket instead: the sum of this rank's
// part of the bucket lands in the shard gradient buffer (zero1.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "parallel/bucket_plan.h"
#include "parallel/comm_timing.h"
#include "parallel/communicator.h"
#include "runtime/vit_model.h"

namespace vitscale {

struct ReducerOptions {
  std::size_t bucket_bytes = 25u << 20;  // zero_optimization.reduce_bucket_size, in bytes
  std::size_t first_bucket_bytes = 0;    // 0: same as bucket_bytes
  bool overlap_comm = true;              // false: launch everything in finish() (DeepSpeed stage 0's way)
};

class GradReducer final : public GradReadyListener {
 public:
  // All-reduce: every rank ends with the summed gradients in `grads` (n) f32.
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options);
  // ZeRO-1: reduce-scatter; this rank's part of the sum lands in
  // shard_grads (layout.count(rank)) f32; `grads` is left holding local sums.
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
              const ShardLayout& layout, TensorView shard_grads);

  // Before each micro-step's backward; `final_micro_step`: the last of the window.
  void begin_step(bool final_micro_step);
  // From ViTModel::backward: every gradient at flat offset >= offset is final.
  void grads_ready_from(std::int64_t offset) override;
  // After the window's last backward: launches the rest, waits for all of it.
  // Leaves nothing in flight. On a non-final micro-step: no-op, zero timing.
  CommTiming finish();

  const BucketPlan& plan() const { return plan_; }
  const ReducerOptions& options() const { return options_; }
  int launched() const { return static_cast<int>(requests_.size()); }
  int in_flight();  // launched and not yet complete (tests the requests)

 private:
  void launch_next();

  Communicator& comm_;
  TensorView grads_;
  ReducerOptions options_;
  BucketPlan plan_;
  bool zero1_ = false;
  // ZeRO-1: per bucket, the per-rank counts and this rank's destination.
  std::vector<std::vector<std::int64_t>> bucket_counts_;
  std::vector<TensorView> bucket_recv_;

  bool in_step_ = false, final_ = false;
  std::int64_t watermark_ = 0;
  std::vector<CommRequest> requests_;  // one per launched bucket, capacity reserved up front
};

}  // namespace vitscale
