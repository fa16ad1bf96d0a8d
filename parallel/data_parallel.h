// data_parallel.h — what the trainer holds for data parallelism: the reducer,
// and the optimizer that goes with it (AdamW on every rank, or ZeRO-1).
//
// One optimizer step with k micro-steps of m images on each of W ranks:
//   const float scale = data_parallel_grad_scale(m, k, W);  // 1 / (m·k·W)
//   model.zero_grads();
//   for (int i = 0; i < k; ++i) {
//     dp.begin_micro_step(i == k - 1);
//     model.upload_batch(...); model.forward(scale); model.backward(dp.listener());
//   }
//   CommTiming t = dp.finish();          // waits for the last buckets
//   dp.optimizer_step(hyper);            // clip, AdamW, (ZeRO-1: all-gather); refreshes compute weights
// With world size 1 and a LocalCommunicator this is exactly single-process
// training; the same code runs at every world size.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "parallel/comm_timing.h"
#include "parallel/communicator.h"
#include "parallel/grad_reducer.h"
#include "parallel/zero1.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/vit_model.h"

namespace vitscale {

struct DataParallelOptions {
  ReducerOptions reducer;  // reduce_bucket_size, overlap_comm
  int zero_stage = 0;      // zero_optimization.stage: 0 or 1
  // zero_optimization.allgather_bucket_size: elements per ZeRO-1 parameter all-gather
  std::int64_t allgather_bucket_elements = Zero1Optimizer::kDefaultGatherBucket;
};

// The loss scale that makes the ranks' summed gradients the global-batch mean
// and k micro-batches of m one batch of k·m.
float data_parallel_grad_scale(int micro_batch, int accumulation_steps, int world_size);

class DataParallel {
 public:
  // Collective: refuses (on every rank) a model or options that differ across ranks.
  DataParallel(Communicator& comm, ViTModel& model, const DataParallelOptions& options);
  ~DataParallel();

  Communicator& comm() { return comm_; }
  int zero_stage() const { return zero1_ ? 1 : 0; }
  const GradReducer& reducer() const { return *reducer_; }
  const Zero1Optimizer* zero1() const { return zero1_.get(); }  // null at stage 0

  void begin_micro_step(bool last_of_window) { reducer_->begin_step(last_of_window); }
  GradReadyListener* listener() { return reducer_.get(); }
  CommTiming finish();
  void optimizer_step(const AdamWHyper& hyper);
  float grad_norm() const;                                   // global, before clipping (host read)
  const CommTiming& last_timing() const { return timing_; }  // finish() + optimizer_step()

  std::size_t optimizer_bytes() const;  // moments held by this rank
  std::string memory_report() const;

  // Full-length (n) moments in flat order, for checkpoints of any world size.
  // Collective under ZeRO-1 (call on every rank).
  void gather_optimizer_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq);
  void load_optimizer_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq);

 private:
  Communicator& comm_;
  ViTModel& model_;
  std::unique_ptr<AdamWOptimizer> adamw_;  // stage 0
  std::unique_ptr<Zero1Optimizer> zero1_;  // stage 1
  std::unique_ptr<GradReducer> reducer_;
  CommTiming timing_;
};

}  // namespace vitscale
