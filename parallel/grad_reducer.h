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
//
// ZeRO-2/3 (ShardedReduce) reduce-scatter the same way and may go further:
//   window:           the model has no full-size gradient buffer; backward
//                     writes each bucket into a slot of a bucket-sized ring
//                     (grad_window.h) handed out by gradient_of().
//   every_micro_step: every micro-step's buckets are reduce-scattered (as
//                     DeepSpeed's stage 2 does); the first micro-step's sums
//                     land in the shard, later ones in a shard-sized scratch
//                     that is added to it once they complete. Needs the
//                     window (there is nothing to accumulate locally).
// With neither (accumulation in the model's full buffer, the default when
// memory allows) ZeRO-2/3 reduce exactly as ZeRO-1 does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "parallel/bucket_plan.h"
#include "parallel/comm_timing.h"
#include "parallel/communicator.h"
#include "parallel/grad_window.h"
#include "runtime/arena.h"
#include "runtime/vit_model.h"

namespace vitscale {

struct ReducerOptions {
  std::size_t bucket_bytes = 25u << 20;  // zero_optimization.reduce_bucket_size, in bytes
  std::size_t first_bucket_bytes = 0;    // 0: same as bucket_bytes
  bool overlap_comm = true;              // false: launch everything in finish() (DeepSpeed stage 0's way)
};

struct ShardedReduce {
  bool window = false;            // gradients live in a bucket-slot ring, not the model's buffer
  bool every_micro_step = false;  // reduce-scatter on every micro-step (needs window)
};

class GradReducer final : public GradReadyListener {
 public:
  // All-reduce: every rank ends with the summed gradients in `grads` (n) f32.
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options);
  // ZeRO-1: reduce-scatter; this rank's part of the sum lands in
  // shard_grads (layout.count(rank)) f32; `grads` is left holding local sums.
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
              const ShardLayout& layout, TensorView shard_grads);
  // ZeRO-2/3. With sharded.window, `grads` is unused (may be empty): the
  // reducer allocates the window on `backend`.
  GradReducer(Communicator& comm, Backend& backend, const ParamTable& table, TensorView grads,
              const ReducerOptions& options, const ShardLayout& layout, TensorView shard_grads,
              const ShardedReduce& sharded);

  // Before each micro-step's backward; `final_micro_step`: the last of the window.
  void begin_step(bool final_micro_step);
  // From ViTModel::backward: every gradient at flat offset >= offset is final.
  void grads_ready_from(std::int64_t offset) override;
  // Window mode: parameter `param`'s gradient slot (zeroed when its bucket
  // first takes it); else empty (the model's buffer).
  TensorView gradient_of(int param) override;
  // After the window's last backward: launches the rest, waits for all of it.
  // Leaves nothing in flight. On a non-final micro-step: no-op, zero timing.
  CommTiming finish();

  const BucketPlan& plan() const { return plan_; }
  const ReducerOptions& options() const { return options_; }
  int launched() const { return static_cast<int>(requests_.size()); }
  int in_flight();  // launched and not yet complete (tests the requests)
  const GradWindowPlan* window() const { return window_.empty() ? nullptr : &window_plan_; }
  // Window mode: the host's seconds blocked in gradient_of since the last
  // call, waiting for an earlier bucket's reduce-scatter to free its slot
  // (exposed communication inside backward; ~0 on NCCL, whose wait orders
  // the stream).
  double take_window_wait_seconds() { return std::exchange(window_wait_s_, 0.0); }
  // Bytes the reducer itself holds (window, scratch): for the memory plan.
  std::size_t working_bytes() const { return window_arena_.buffer.bytes() + scratch_arena_.buffer.bytes(); }

 private:
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
              bool check_grads);
  GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
              const ShardLayout& layout, TensorView shard_grads, bool check_grads);
  void launch_next();
  void claim_slot(int bucket);
  // Every-micro-step mode: waits for this micro-step's reduce-scatters and
  // folds them into the shard.
  void settle_micro_step(CommTiming& t);
  bool communicating() const { return final_ || sharded_.every_micro_step; }

  Communicator& comm_;
  TensorView grads_;
  ReducerOptions options_;
  BucketPlan plan_;
  bool zero1_ = false;
  // ZeRO-1: per bucket, the per-rank counts and this rank's destination.
  std::vector<std::vector<std::int64_t>> bucket_counts_;
  std::vector<TensorView> bucket_recv_;
  // ZeRO-2/3.
  Backend* backend_ = nullptr;
  ShardedReduce sharded_;
  GradWindowPlan window_plan_;
  double window_wait_s_ = 0;
  Arena window_arena_, scratch_arena_;
  TensorView window_, shard_grads_, scratch_;  // (capacity), (shard), (shard) f32
  std::vector<TensorView> bucket_scratch_recv_;
  std::vector<int> bucket_of_param_;
  std::vector<std::pair<std::int64_t, std::int64_t>> param_ranges_;  // (offset, numel) per parameter
  int next_slot_ = 0;
  bool first_micro_ = true;  // no micro-step of this window reduced yet
  CommTiming pending_;       // earlier micro-steps' reduce-scatters, reported by finish()

  bool in_step_ = false, final_ = false;
  std::int64_t watermark_ = 0;
  std::vector<CommRequest> requests_;  // one per launched bucket, capacity reserved up front
};

}  // namespace vitscale
