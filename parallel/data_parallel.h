// data_parallel.h — what the trainer holds for data parallelism: the reducer,
// and the optimizer that goes with it (AdamW on every rank, or ZeRO 1-3).
//
// The ladder (W ranks, n parameters; what one rank keeps):
//   stage 0: params n, grads n, moments 2n; all-reduce per bucket
//   stage 1: params n, grads n (+ shard n/W), moments 2n/W; reduce-scatter
//            per bucket, AdamW on the shard, all-gather of the parameters
//   stage 2: params n, grads: shard n/W + a bucket-slot window (grad_window.h)
//            instead of the full buffer, moments 2n/W; same traffic as stage 1
//   stage 3: params: shard n/W + two group-sized gather buffers
//            (zero3_params.h), grads and moments as stage 2; no all-gather
//            after the step, a gather per group before its forward and its
//            backward instead (about 1.5x stage 1's traffic)
// With gradient accumulation stages 2/3 keep the full gradient buffer and
// reduce on the last micro-step (as stage 1) unless reduce_every_micro_step.
//
// One optimizer step with k micro-steps of m images on each of W ranks:
//   const float scale = data_parallel_grad_scale(m, k, W);  // 1 / (m·k·W)
//   model.zero_grads();
//   for (int i = 0; i < k; ++i) {
//     dp.begin_micro_step(i == k - 1);
//     model.upload_batch(...); model.forward(scale); model.backward(dp.listener());
//   }
//   CommTiming t = dp.finish();          // waits for the last buckets
//   dp.optimizer_step(hyper);            // clip, AdamW, (ZeRO-1/2: all-gather); refreshes compute weights
// (ZeRO-1/2 with overlap_comm: the all-gather is only issued there; the next
// forward waits for each weight group as it reaches it, and the model's
// read_params / write_params wait for all of it.)
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
#include "parallel/zero3_params.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/vit_model.h"

namespace vitscale {

struct DataParallelOptions {
  ReducerOptions reducer;  // reduce_bucket_size, overlap_comm
  int zero_stage = 0;      // zero_optimization.stage: 0..3
  // zero_optimization.allgather_bucket_size: elements per ZeRO-1/2 parameter all-gather
  std::int64_t allgather_bucket_elements = Zero1Optimizer::kDefaultGatherBucket;
  // ZeRO-2/3 with gradient accumulation: reduce-scatter every micro-step's
  // buckets into the shard (DeepSpeed's way: no full gradient buffer, k times
  // the traffic) instead of accumulating in the full buffer and reducing once.
  bool reduce_every_micro_step = false;
  // ZeRO-1/2 with overlap_comm: the parameter all-gather after the step is
  // left in flight, group by group, and waited for by the next forward
  // (zero1.h). false keeps it blocking (CUDA graphs capture the optimizer
  // phase whole, so vit_train turns this off under runtime.cuda_graphs).
  bool overlap_param_gather = true;
  Zero3Options zero3;  // stage3_* keys
};
// The model is built for the stage (ModelShape): resident_params = stage < 3;
// resident_gradients = false exactly when ZeRO-2/3 reduce every micro-step or
// there is only one (train::TrainConfig::zero_gradient_window decides for
// vit_train); DataParallel checks the two agree with the options.

// The loss scale that makes the ranks' summed gradients the global-batch mean
// and k micro-batches of m one batch of k·m.
float data_parallel_grad_scale(int micro_batch, int accumulation_steps, int world_size);

class DataParallel final : private ParamArrival {
 public:
  // Collective: refuses (on every rank) a model or options that differ across ranks.
  DataParallel(Communicator& comm, ViTModel& model, const DataParallelOptions& options);
  ~DataParallel() override;

  Communicator& comm() { return comm_; }
  int zero_stage() const { return stage_; }
  const GradReducer& reducer() const { return *reducer_; }
  const Zero1Optimizer* zero1() const { return zero1_.get(); }  // the shard optimizer; null at stage 0
  const Zero3Params* zero3() const { return zero3_.get(); }     // null below stage 3

  void begin_micro_step(bool last_of_window) { reducer_->begin_step(last_of_window); }
  GradReadyListener* listener() { return reducer_.get(); }
  CommTiming finish();
  void optimizer_step(const AdamWHyper& hyper);
  float grad_norm() const;                                   // global, before clipping (host read)
  const CommTiming& last_timing() const { return timing_; }  // finish() + optimizer_step()
  // Host seconds forward and backward spent, since the last call, waiting for
  // parameter all-gathers (ZeRO-3's groups, ZeRO-1/2's overlapped gather) and,
  // at ZeRO-2/3, for a reduce-scatter to free a gradient-window slot:
  // communication the compute did not hide. CPU engines; ~0 on NCCL, whose
  // wait orders the compute stream instead of blocking the host.
  double take_pass_wait_seconds();

  std::size_t optimizer_bytes() const;  // moments held by this rank
  // This rank's bytes outside the model's arenas, added to its rows:
  // optimizer = moments, gradients += shard and window, parameters += ZeRO-3's.
  void add_to_plan(MemoryPlan& plan) const;
  std::string memory_report() const;

  // Full-length (n) moments in flat order, for checkpoints of any world size.
  // Collective under ZeRO-1 (call on every rank).
  void gather_optimizer_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq);
  void load_optimizer_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq);

 private:
  // ParamArrival (ZeRO-1/2, overlapped gather): waits in zero1_, then refreshes the group's compute copy.
  void wait_group(int group) override;
  void wait_all() override;

  Communicator& comm_;
  ViTModel& model_;
  std::unique_ptr<AdamWOptimizer> adamw_;  // stage 0
  std::unique_ptr<Zero1Optimizer> zero1_;  // stages 1-3
  std::unique_ptr<Zero3Params> zero3_;     // stage 3
  std::unique_ptr<GradReducer> reducer_;
  int stage_ = 0;
  CommTiming timing_;
};

}  // namespace vitscale
