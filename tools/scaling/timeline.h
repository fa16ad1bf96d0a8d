// timeline.h — one optimizer step of data-parallel training, replayed.
//
// What happens on every rank (DESIGN.md, "How data flows"):
//   k micro-steps of [input, forward, backward]; gradients of the last
//   micro-step's backward become final back to front (profile.h); a bucket —
//   a contiguous slice of the flat gradient buffer, formed exactly as
//   parallel/bucket_plan.cpp forms them — is all-reduced
//     overlap on:  as soon as its last gradient is final,
//     overlap off: after the whole backward (DeepSpeed ZeRO-0's way);
//   buckets go one after the other on a single communication channel;
//   the optimizer starts when backward and every bucket are done.
// So   step = max(backward end, last bucket end) + optimizer + overhead,
//      exposed = max(0, last bucket end − backward end), overlap = 1 − exposed / comm.
//
// Two effects beyond the ideal replay, each a named knob with default "off":
//   * sharing the core (network_model.h, NetworkModel::overlapped): on CPU
//     ranks the reduction runs on the cores that compute; while a bucket's
//     collective and compute are both active each runs at a fraction of its
//     speed alone — measured per message size where the model has a contended
//     curve (vit_contended_bench: scheduling delays and busy-waiting for a
//     late peer included), else 1 / (1 + comm_compute_share) each (processor
//     sharing).
//   * jitter_cv: synchronous training waits for the slowest rank; with
//     per-rank compute times i.i.d. normal of coefficient of variation cv the
//     expected slowest of p is  mean · (1 + cv · E[max of p standard normals]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"

namespace vitscale::scaling {

struct SimBucket {
  std::int64_t begin = 0;  // flat element offset
  std::int64_t count = 0;  // elements, alignment padding included
};

// parallel/bucket_plan.cpp's rule: walk parameters from the last, add each
// whole parameter while the bucket's parameter bytes stay within the cap (a
// parameter larger than the cap gets a bucket of its own); bucket 0 uses
// first_bucket_bytes (0: the same cap); buckets tile [0, total) in launch order.
std::vector<SimBucket> plan_buckets(const std::vector<ParamExtent>& params, std::int64_t total,
                                    std::size_t bucket_bytes, std::size_t first_bucket_bytes = 0, int grad_bytes = 4);

struct StepOptions {
  int world = 1;
  int accumulation = 1;                  // micro-steps per optimizer step
  bool overlap = true;                   // zero_optimization.overlap_comm
  std::size_t bucket_bytes = 25u << 20;  // zero_optimization.reduce_bucket_size, bytes
  std::size_t first_bucket_bytes = 0;
  double jitter_cv = 0;         // straggler model; 0: every rank takes the mean time
  double compute_slowdown = 1;  // > 1 when ranks share cores (oversubscription)
};

struct BucketTiming {
  std::int64_t begin = 0, count = 0;
  double ready_s = 0, start_s = 0, end_s = 0;  // from the start of the step
};

struct StepResult {
  double step_s = 0;          // one optimizer step, wall
  double compute_s = 0;       // input + forward + backward of all micro-steps, at full speed
  double backward_end_s = 0;  // when the last micro-step's backward finished
  double comm_s = 0;          // time the channel was busy with gradient buckets
  double comm_end_s = 0;      // when the last bucket finished
  double exposed_s = 0;       // max(0, comm_end − backward_end)
  double optimizer_s = 0;     // optimizer + per-step overhead
  std::vector<BucketTiming> buckets;
  double overlap_ratio() const;  // 1 − exposed / comm; 0 without communication
};

// Expected maximum of p independent standard normals (0 for p = 1), by quadrature.
double expected_max_std_normal(int p);

// Replays one optimizer step of `profile` (already at the run's micro-batch).
StepResult simulate_step(const StepProfile& profile, const NetworkModel& net, const StepOptions& opt);

}  // namespace vitscale::scaling
