// step_engine.h — what the trainer needs around the model for one optimizer
// step: gradient synchronisation, the optimizer, and host collectives. This is
// the seam where data parallelism plugs in.
//
// One optimizer step with k micro-steps (the trainer's loop, every world size):
//   model.zero_grads();
//   for i in 0..k-1:  engine.begin_micro_step(i == k-1);
//                     model.upload_batch(..); model.forward(1 / global batch);
//                     model.backward(engine.listener());
//   exposed = engine.finish();            // gradients are the global sums now
//   engine.optimizer_step(hyper);         // clip, AdamW (or ZeRO-1), refresh compute weights
// Two implementations:
//   LocalEngine (here)       world size 1: no listener, plain AdamWOptimizer.
//   DataParallelEngine       parallel/'s DataParallel (bucketed, overlapped
//                            all-reduce or ZeRO-1 reduce-scatter) over any
//                            Communicator (train/data_parallel_engine.cpp,
//                            built when parallel/ is).
// Evaluation and logged metrics are summed across ranks with all_reduce_sum,
// so every rank reports the full test set's accuracy.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/vit_model.h"

namespace vitscale::train {

class StepEngine {
 public:
  virtual ~StepEngine() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string describe() const = 0;  // for the start-up report

  // Before each micro-step's backward; final: the last micro-step of the window
  // (only then may gradients be communicated).
  virtual void begin_micro_step(bool final_micro_step) = 0;
  // Passed to ViTModel::backward; null when nothing listens (world size 1).
  virtual GradReadyListener* listener() = 0;
  // After the window's last backward: waits for the gradient reduction.
  // Returns the communication seconds it exposed (not hidden behind backward).
  virtual double finish() = 0;
  // Clips to hyper.max_grad_norm, updates the masters, refreshes the compute
  // copy. Returns communication seconds spent inside (ZeRO-1's all-gather).
  virtual double optimizer_step(const AdamWHyper& hyper) = 0;
  // Total seconds the last step's collectives took, hidden or not (0 at world
  // size 1); with finish()'s exposed seconds this gives the overlap ratio.
  virtual double comm_total_seconds() const { return 0.0; }
  // Host seconds the passes spent, since the last call, waiting for parameter
  // all-gathers (ZeRO-3's groups; ZeRO-1/2's gather overlapped with the next
  // forward) or for a reduce-scatter to free a gradient-window slot (ZeRO-2/3):
  // exposed communication inside forward and backward, which the trainer
  // moves from their times to comm. 0 where nothing waits and on NCCL (its
  // waits order the device; the host does not block).
  virtual double take_pass_wait_seconds() { return 0.0; }
  // Global gradient norm before clipping, of the last step (reads the device).
  virtual float grad_norm() const = 0;

  virtual std::size_t optimizer_bytes() const = 0;  // moments held by this rank
  // This rank's bytes the engine holds for the model, into the start-up plan's
  // rows (ZeRO's shards and working buffers); the moments at least.
  virtual void add_to_plan(MemoryPlan& plan) const { plan.optimizer = optimizer_bytes(); }
  // Full-length (n) moments in the flat parameter order. Collective under ZeRO-1.
  virtual void gather_optimizer_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq) = 0;
  virtual void load_optimizer_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq) = 0;

  // Host values summed over ranks in place (blocking, collective).
  virtual void all_reduce_sum(std::span<double> values) = 0;
  // Max over ranks of a flag: every rank stops at the same step when any was signalled.
  bool any_rank(bool flag) {
    double v = flag ? 1.0 : 0.0;
    all_reduce_sum(std::span<double>(&v, 1));
    return v > 0.0;
  }
};

// World size 1: AdamW over the whole flat buffer, no communication.
std::unique_ptr<StepEngine> make_local_engine(ViTModel& model);

}  // namespace vitscale::train
