// step_graphs.h — vit_train --cuda-graphs: the phases of a training step
// captured once as CUDA graphs and replayed every step after.
//
// A ViT step on small images is hundreds of short kernels; launched one by
// one from the host, the gaps between them can cost as much as the kernels.
// Replaying a captured graph launches the whole phase at once.
//
// The step keeps three graphs, one per phase, so that --wall-clock-breakdown
// still times forward, backward and the optimizer apart, and so that gradient
// accumulation replays the forward and backward graphs k times per step:
//   forward    patchify .. loss and d_logits (the batch is uploaded before it,
//              outside the graph: the loader's pinned slots move)
//   backward   d_logits .. every parameter gradient (accumulating)
//   optimizer  grad norm, clip, AdamW, bf16 weight refresh, zero the grads
// Each phase runs eagerly on its first use (which sizes the backend's scratch,
// uploads the AdamW segment table and picks the GEMM algorithms), is captured
// on its second and replayed from then on. AdamW reads lr and the step count
// from device memory: set_adamw_hyper() writes them before each replay.
//
// What is fixed at capture: every shape (the trainer only runs full
// micro-batches), every buffer address (the model's arenas never move) and
// the loss scale 1 / train_batch_size. Evaluation stays eager.
//
// Only world size 1: the data-parallel engines launch collectives from host
// callbacks during backward and time them on the host, which a replayed graph
// cannot do. resolve() refuses --cuda-graphs with more ranks, and on the CPU.
#pragma once

#include <functional>
#include <memory>

#include "runtime/backend.h"

namespace vitscale::train {

class StepGraphs {
 public:
  enum class Phase { forward = 0, backward = 1, optimizer = 2 };

  // Throws ConfigError when `backend` is not the CUDA backend (or this build has no CUDA).
  explicit StepGraphs(Backend& backend);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Runs `body` (the phase's backend calls) eagerly, or captures then replays
  // it, or replays it. For the optimizer phase, `hyper` is written to the
  // device before a replay.
  void run(Phase phase, const std::function<void()>& body, const AdamWHyper* hyper = nullptr);


 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vitscale::train
