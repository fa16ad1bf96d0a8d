// adamw_optimizer.h — AdamW state (first and second moments) in one arena, and
// the step: global gradient norm, clipping, decoupled weight decay.
//
// The optimizer covers a contiguous range of the flat parameter buffer: all of
// it, or with ZeRO-1 this rank's shard. Its segments carry the weight-decay
// rule (no decay on biases, LayerNorm parameters, cls token, pos embed).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/param_table.h"

namespace vitscale {

class AdamWOptimizer {
 public:
  // Covers flat elements [begin, begin + count) of the parameter buffer.
  AdamWOptimizer(Backend& backend, const ParamTable& table, std::int64_t begin, std::int64_t count);
  AdamWOptimizer(Backend& backend, const ParamTable& table) : AdamWOptimizer(backend, table, 0, table.total_numel()) {}

  // Σ g² of this range into grad_norm_sq() (device). With ZeRO-1 the caller
  // all-reduces that scalar before update().
  void compute_grad_norm_sq(TensorView grads_range);
  // params_range / grads_range: (count) f32 views of this optimizer's range.
  void update(TensorView params_range, TensorView grads_range, const AdamWHyper& hyper);
  // Both, for the single-process case. Full flat buffers.
  void step(TensorView params, TensorView grads, const AdamWHyper& hyper);

  TensorView grad_norm_sq() const { return norm_sq_; }  // (1) f32, device
  float read_grad_norm() const;                          // sqrt of it, copied to the host
  TensorView exp_avg() const { return m_; }              // (count) f32
  TensorView exp_avg_sq() const { return v_; }           // (count) f32
  std::int64_t begin() const { return begin_; }
  std::int64_t count() const { return count_; }
  std::size_t bytes() const { return arena_.buffer.bytes(); }

 private:
  Backend& backend_;
  std::int64_t begin_, count_;
  std::vector<ParamSegment> segments_;  // offsets relative to begin_
  Arena arena_;
  TensorView m_, v_, norm_sq_;
};

}  // namespace vitscale
