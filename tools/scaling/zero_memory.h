// zero_memory.h — what one rank holds at ZeRO stage 0-3, with or without
// activation checkpointing, for a model too large to allocate here.
//
// Ψ parameters, p ranks, bytes per element: P working weights, M an fp32
// master copy beside them (0 when the working weights are the fp32 masters,
// as in vitscale's fp32 runs), G gradients, K = 8 AdamW moments (m, v):
//                parameters   gradients   optimizer (masters + moments)
//   stage 0      Ψ·P          Ψ·G         Ψ·(M+K)
//   stage 1      Ψ·P          Ψ·G         Ψ·(M+K)/p
//   stage 2      Ψ·P          Ψ·G/p       Ψ·(M+K)/p
//   stage 3      Ψ·P/p        Ψ·G/p       Ψ·(M+K)/p
// (mixed precision, P = G = 2, M = 4: 16Ψ, 4Ψ + 12Ψ/p, 2Ψ + 14Ψ/p, 16Ψ/p:
// the ZeRO paper's figures), with the buffers parallel/data_parallel.h keeps:
//   stages 1-3  the reduce-scatter's destination, the gradient shard Ψ·G/p
//               (the "gradients" Ψ·G/p above; at one rank all of it),
//               reported as `working`, and at stage 1 the full buffer Ψ·G;
//   stages 2-3  instead of the full gradient buffer a window of bucket slots:
//               the trainer's own plan (parallel/grad_window.h's
//               plan_grad_window over plan_buckets: the same capacity, so the
//               same bucket count as vit_train's start-up log), or the full
//               buffer when accumulation sums locally or overlap is off;
//   stage 3     two buffers of the largest weight group (the one computing,
//               the one prefetched) and the persistent small groups
//               (stage3_param_persistence_threshold), in "parameters".
// Activations: runtime/vit_model.cpp's arena, element for element (each view
// aligned to 256 bytes as runtime/arena.h does): every block's saved tensors,
// or with checkpointing each block's input plus one shared working set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/vit_config.h"

namespace vitscale::scaling {

struct MemoryBytes {
  int param = 4;      // P: working weights
  int master = 0;     // M: fp32 master copy beside them
  int grad = 4;       // G
  int optimizer = 8;  // K: AdamW's two fp32 moments
  int activation = 4;
  static MemoryBytes fp32() { return {}; }
  static MemoryBytes mixed() { return {2, 4, 2, 8, 2}; }  // fp16/bf16 weights, gradients, activations
};

struct ZeroMemoryOptions {
  int stage = 0;
  bool checkpointing = false;
  int world = 1;
  int micro_batch = 64;
  MemoryBytes bytes;
  std::size_t bucket_bytes = 25u << 20;   // reduce_bucket_size in bytes (stages 2-3: the gradient window)
  int accumulation = 1;                   // gradient_accumulation_steps
  bool reduce_every_micro_step = false;   // stages 2-3 (no full gradient buffer with accumulation)
  bool overlap = true;                    // overlap_comm (off: stages 2-3 keep the full gradient buffer)
  std::int64_t persistence_elements = 0;  // stage 3: stage3_param_persistence_threshold
};

struct ZeroMemory {
  std::size_t params = 0, grads = 0, optimizer = 0, activations = 0, working = 0;
  double window_buckets = 0;  // stages 2-3: the gradient window in buckets (GradWindowPlan::bucket_count)
  std::size_t total() const { return params + grads + optimizer + activations + working; }
};

// runtime/vit_model.cpp's activation arena for `micro_batch` images.
std::size_t activation_bytes(const ViTConfig& cfg, int micro_batch, bool checkpointing, int activation_dtype_bytes);

// Throws std::invalid_argument for a stage outside 0-3 or a world below 1.
ZeroMemory zero_memory(const ViTConfig& cfg, const ZeroMemoryOptions& opt);

}  // namespace vitscale::scaling
