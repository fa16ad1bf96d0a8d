// scaling_study.h — strong and weak scaling, epochs and bucket sweeps, built
// on one rank's profile and the step replay of timeline.h.
//
// Two kinds of strong scaling are in use, and the paper used the second:
//   fixed global batch: the global batch B stays, each of p ranks takes B/p;
//                       speed-up = throughput(p) / throughput(1);
//   fixed dataset:      the micro-batch stays, the epoch is split p ways;
//                       speed-up = epoch time(1) / epoch time(p).
// Weak scaling keeps each rank's share (micro-batch, or images per epoch)
// fixed; efficiency = time(1) / time(p).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/timeline.h"
#include "tools/scaling/zero_timeline.h"

namespace vitscale::scaling {

struct RunConfig {
  int world = 1;
  int micro_batch = 64;
  int accumulation = 1;
  bool overlap = true;
  std::size_t bucket_bytes = 25u << 20;
  std::size_t first_bucket_bytes = 0;
  double jitter_cv = 0;
  int cpu_cores = 0;  // CPU ranks: compute slows by world / cpu_cores when ranks outnumber cores (0: off)

  int global_batch() const { return world * micro_batch * accumulation; }
  bool oversubscribed() const { return cpu_cores > 0 && world > cpu_cores; }
};

// One optimizer step of `rc` from the base profile (scaled to rc.micro_batch).
StepResult predict_step(const StepProfile& base, const NetworkModel& net, const RunConfig& rc);
// The same at a ZeRO stage, with or without activation checkpointing (zero_timeline.h).
ZeroStepResult predict_zero_step(const StepProfile& base, const NetworkModel& net, const RunConfig& rc,
                                 const ZeroOptions& zero);

// One epoch over `images` images split across the ranks as a distributed
// sampler does (each rank gets ceil(images / world), the last step of the
// epoch may be short).
double predict_epoch_s(const StepProfile& base, const NetworkModel& net, const RunConfig& rc, std::int64_t images);

struct ScalingPoint {
  RunConfig config;
  StepResult step;
  double images_per_s = 0;  // global
  double time_s = 0;        // the figure compared: step time or epoch time
  double speedup = 1;       // vs world 1
  double efficiency = 1;    // speed-up / world (strong) or time(1) / time(p) (weak)
};

// Fixed global batch: micro-batch = global / world (skips worlds that do not divide it).
std::vector<ScalingPoint> strong_fixed_global(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                              int global_batch, const std::vector<int>& worlds);
// Fixed dataset (the paper's strong scaling): rc.micro_batch per rank, `images` per epoch.
std::vector<ScalingPoint> strong_fixed_dataset(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                               std::int64_t images, const std::vector<int>& worlds);
// Weak scaling: each rank keeps rc.micro_batch; with images_per_rank > 0 the
// figure is the epoch time over images_per_rank · world images, else the step time.
std::vector<ScalingPoint> weak_scaling(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                       std::int64_t images_per_rank, const std::vector<int>& worlds);

struct BucketChoice {
  std::size_t bucket_bytes = 0;
  StepResult step;
};
// Step time for each candidate bucket size (overlap on), and the recommendation:
// the smallest step time; among sizes within 0.1% of it (ties), the largest (fewer
// collectives, less sensitive to latency the model does not see).
std::vector<BucketChoice> sweep_buckets(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                        const std::vector<std::size_t>& candidates);
std::size_t recommend_bucket(const std::vector<BucketChoice>& sweep);
std::vector<std::size_t> default_bucket_candidates();  // 1 MiB .. 1 GiB, powers of two, and 25 MiB

std::vector<int> powers_of_two(int max_world);  // 1, 2, 4, ..., max_world (max_world included)

}  // namespace vitscale::scaling
