#include "tools/scaling/scaling_study.h"

#include <algorithm>
#include <stdexcept>

namespace vitscale::scaling {

namespace {
StepOptions step_options(const RunConfig& rc) {
  StepOptions o;
  o.world = rc.world;
  o.accumulation = rc.accumulation;
  o.overlap = rc.overlap;
  o.bucket_bytes = rc.bucket_bytes;
  o.first_bucket_bytes = rc.first_bucket_bytes;
  o.jitter_cv = rc.jitter_cv;
  o.compute_slowdown = rc.oversubscribed() ? static_cast<double>(rc.world) / rc.cpu_cores : 1.0;
  return o;
}
}  // namespace

StepResult predict_step(const StepProfile& base, const NetworkModel& net, const RunConfig& rc) {
  if (rc.micro_batch < 1) throw std::invalid_argument("predict: micro-batch must be >= 1");
  return simulate_step(base.at_batch(rc.micro_batch), net, step_options(rc));
}

ZeroStepResult predict_zero_step(const StepProfile& base, const NetworkModel& net, const RunConfig& rc,
                                 const ZeroOptions& zero) {
  if (rc.micro_batch < 1) throw std::invalid_argument("predict: micro-batch must be >= 1");
  return simulate_zero_step(base.at_batch(rc.micro_batch), net, step_options(rc), zero);
}

double predict_epoch_s(const StepProfile& base, const NetworkModel& net, const RunConfig& rc, std::int64_t images) {
  if (images < 1) throw std::invalid_argument("predict: an epoch needs at least one image");
  const std::int64_t per_rank = (images + rc.world - 1) / rc.world;  // DistributedSampler pads to equal shares
  const std::int64_t per_step = static_cast<std::int64_t>(rc.micro_batch) * rc.accumulation;
  const std::int64_t full = per_rank / per_step, rest = per_rank % per_step;
  double t = static_cast<double>(full) * predict_step(base, net, rc).step_s;
  if (rest > 0) {
    // The short last step: as many micro-steps as it needs, evenly filled.
    RunConfig last = rc;
    last.accumulation = static_cast<int>((rest + rc.micro_batch - 1) / rc.micro_batch);
    last.micro_batch = static_cast<int>((rest + last.accumulation - 1) / last.accumulation);
    t += predict_step(base, net, last).step_s;
  }
  return t;
}

std::vector<ScalingPoint> strong_fixed_global(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                              int global_batch, const std::vector<int>& worlds) {
  std::vector<ScalingPoint> out;
  for (int w : worlds) {
    if (global_batch % (w * rc.accumulation) != 0) continue;
    rc.world = w;
    rc.micro_batch = global_batch / (w * rc.accumulation);
    ScalingPoint s{rc, predict_step(base, net, rc)};
    s.time_s = s.step.step_s;
    s.images_per_s = global_batch / s.time_s;
    out.push_back(s);
  }
  for (auto& s : out) {
    s.speedup = s.images_per_s / out.front().images_per_s * out.front().config.world;
    s.efficiency = s.speedup / s.config.world;
  }
  return out;
}

std::vector<ScalingPoint> strong_fixed_dataset(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                               std::int64_t images, const std::vector<int>& worlds) {
  std::vector<ScalingPoint> out;
  for (int w : worlds) {
    rc.world = w;
    ScalingPoint s{rc, predict_step(base, net, rc)};
    s.time_s = predict_epoch_s(base, net, rc, images);
    s.images_per_s = static_cast<double>(images) / s.time_s;
    out.push_back(s);
  }
  for (auto& s : out) {
    s.speedup = out.front().time_s / s.time_s * out.front().config.world;
    s.efficiency = s.speedup / s.config.world;
  }
  return out;
}

std::vector<ScalingPoint> weak_scaling(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                       std::int64_t images_per_rank, const std::vector<int>& worlds) {
  std::vector<ScalingPoint> out;
  for (int w : worlds) {
    rc.world = w;
    ScalingPoint s{rc, predict_step(base, net, rc)};
    if (images_per_rank > 0) {
      s.time_s = predict_epoch_s(base, net, rc, images_per_rank * w);
      s.images_per_s = static_cast<double>(images_per_rank * w) / s.time_s;
    } else {
      s.time_s = s.step.step_s;
      s.images_per_s = rc.global_batch() / s.time_s;
    }
    out.push_back(s);
  }
  for (auto& s : out) {
    s.efficiency = out.front().time_s / s.time_s;
    s.speedup = s.efficiency * s.config.world;
  }
  return out;
}

std::vector<BucketChoice> sweep_buckets(const StepProfile& base, const NetworkModel& net, RunConfig rc,
                                        const std::vector<std::size_t>& candidates) {
  rc.overlap = true;
  std::vector<BucketChoice> out;
  for (std::size_t b : candidates) {
    rc.bucket_bytes = b;
    out.push_back({b, predict_step(base, net, rc)});
  }
  return out;
}

std::size_t recommend_bucket(const std::vector<BucketChoice>& sweep) {
  if (sweep.empty()) throw std::invalid_argument("bucket sweep: no candidates");
  double best = sweep.front().step.step_s;
  for (const auto& c : sweep) best = std::min(best, c.step.step_s);
  std::size_t pick = 0;
  for (const auto& c : sweep)
    if (c.step.step_s <= best * 1.001) pick = std::max(pick, c.bucket_bytes);
  return pick;
}

std::vector<std::size_t> default_bucket_candidates() {
  std::vector<std::size_t> c;
  for (std::size_t mib = 1; mib <= 1024; mib *= 2) c.push_back(mib << 20);
  c.push_back(25u << 20);
  std::sort(c.begin(), c.end());
  return c;
}

std::vector<int> powers_of_two(int max_world) {
  std::vector<int> w;
  for (int p = 1; p < max_world; p *= 2) w.push_back(p);
  w.push_back(max_world);
  return w;
}

}  // namespace vitscale::scaling
