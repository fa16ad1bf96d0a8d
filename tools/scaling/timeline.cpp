#include "tools/scaling/timeline.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace vitscale::scaling {

std::vector<SimBucket> plan_buckets(const std::vector<ParamExtent>& params, std::int64_t total,
                                    std::size_t bucket_bytes, std::size_t first_bucket_bytes, int grad_bytes) {
  if (bucket_bytes == 0) throw std::invalid_argument("bucket plan: reduce_bucket_size must be positive");
  if (first_bucket_bytes == 0) first_bucket_bytes = bucket_bytes;
  std::vector<SimBucket> out;
  if (params.empty()) return out;
  std::int64_t top = total;  // where the bucket above the open one begins
  std::size_t bytes = 0;
  auto close = [&](std::size_t lo) {
    const std::int64_t begin = lo == 0 ? 0 : params[lo].offset;
    out.push_back(SimBucket{begin, top - begin});
    top = begin;
    bytes = 0;
  };
  for (std::size_t i = params.size(); i-- > 0;) {
    const std::size_t b = static_cast<std::size_t>(params[i].numel) * static_cast<std::size_t>(grad_bytes);
    const std::size_t cap = out.empty() ? first_bucket_bytes : bucket_bytes;
    if (bytes > 0 && bytes + b > cap) close(i + 1);
    bytes += b;
  }
  close(0);
  return out;
}

double StepResult::overlap_ratio() const {
  if (comm_s <= 0) return 0.0;
  return std::clamp(1.0 - exposed_s / comm_s, 0.0, 1.0);
}

double expected_max_std_normal(int p) {
  if (p <= 1) return 0.0;
  // E[max] = ∫ x · p · φ(x) · Φ(x)^(p−1) dx, Simpson's rule on [−10, 10].
  constexpr int n = 4000;
  constexpr double a = -10.0, b = 10.0, h = (b - a) / n;
  auto f = [p](double x) {
    const double phi = std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
    const double cdf = 0.5 * std::erfc(-x / std::numbers::sqrt2);
    return x * p * phi * std::pow(cdf, p - 1);
  };
  double s = f(a) + f(b);
  for (int i = 1; i < n; ++i) s += f(a + i * h) * (i % 2 ? 4.0 : 2.0);
  return s * h / 3.0;
}

StepResult simulate_step(const StepProfile& p, const NetworkModel& net, const StepOptions& o) {
  if (o.world < 1) throw std::invalid_argument("simulate: world size " + std::to_string(o.world) + " < 1");
  if (o.accumulation < 1) throw std::invalid_argument("simulate: gradient accumulation steps must be >= 1");
  if (o.compute_slowdown <= 0 || o.jitter_cv < 0) throw std::invalid_argument("simulate: bad slowdown or jitter");
  p.validate();

  // Every rank's compute, stretched by oversubscription and by waiting for the slowest rank.
  const double scale = o.compute_slowdown * (1.0 + o.jitter_cv * expected_max_std_normal(o.world));
  const double micro_front = p.input_s + p.forward_s;
  StepResult r;
  r.compute_s = o.accumulation * (micro_front + p.backward_s()) * scale;
  // Micro-steps before the last one never communicate (no_sync); then the last forward.
  double t = (o.accumulation * micro_front + (o.accumulation - 1) * p.backward_s()) * scale;

  const std::vector<SimBucket> buckets =
      o.world > 1 ? plan_buckets(p.params, p.total_elements, o.bucket_bytes, o.first_bucket_bytes, p.grad_bytes)
                  : std::vector<SimBucket>{};
  const std::size_t nb = buckets.size();
  r.buckets.resize(nb);
  // The compute of the step before each bucket is ready: the spacing between
  // two launches, which the contended curves are measured at
  // (NetworkModel::overlapped); the first bucket's counts from the step's start.
  std::vector<double> ready_compute(nb, 0.0);
  {
    double done = t;
    std::size_t next = 0;
    for (const auto& seg : p.backward) {
      done += seg.seconds * scale;
      while (next < nb && seg.ready_from <= buckets[next].begin) ready_compute[next++] = done;
    }
  }
  std::vector<double> work(nb);
  std::vector<NetworkModel::Overlapped> together(nb);
  for (std::size_t i = 0; i < nb; ++i) {
    r.buckets[i].begin = buckets[i].begin;
    r.buckets[i].count = buckets[i].count;
    const double bytes = static_cast<double>(buckets[i].count) * p.grad_bytes;
    work[i] = net.allreduce_s(bytes, o.world);
    const double gap = ready_compute[i] - (i ? ready_compute[i - 1] : 0.0);
    together[i] = net.overlapped(bytes, o.world, Collective::all_reduce, gap);
  }

  // Event replay of the last backward and the buckets. While compute and a
  // bucket's collective are both active each runs at its `together` rate.
  constexpr double inf = std::numeric_limits<double>::infinity();
  const auto& segs = p.backward;
  std::size_t seg = 0, next_ready = 0, next_launch = 0;
  double seg_left = segs[0].seconds * scale, comm_left = 0;
  bool computing = true, communicating = false;
  std::int64_t watermark = p.total_elements;  // gradients at offsets >= watermark are final
  while (computing || communicating || next_launch < nb) {
    if (!communicating && next_launch < next_ready && (o.overlap || !computing)) {
      communicating = true;
      comm_left = work[next_launch];
      r.buckets[next_launch].start_s = t;
    }
    if (!computing && !communicating) break;  // (cannot happen: every bucket is ready once backward ends)
    const double rc = communicating ? together[next_launch].compute_rate : 1.0;
    const double rm = computing && communicating ? together[next_launch].comm_rate : 1.0;
    const double dt_c = computing ? seg_left / rc : inf;
    const double dt_m = communicating ? comm_left / rm : inf;
    const double dt = std::min(dt_c, dt_m);
    t += dt;
    if (computing) seg_left -= dt * rc;
    if (communicating) comm_left -= dt * rm;
    if (computing && dt_c <= dt_m) {
      watermark = segs[seg].ready_from;
      while (next_ready < nb && watermark <= buckets[next_ready].begin) r.buckets[next_ready++].ready_s = t;
      if (++seg == segs.size()) {
        computing = false;
        r.backward_end_s = t;
      } else {
        seg_left = segs[seg].seconds * scale;
      }
    }
    if (communicating && dt_m <= dt_c) {
      r.buckets[next_launch++].end_s = t;
      communicating = false;
    }
  }

  r.comm_end_s = nb ? r.buckets.back().end_s : r.backward_end_s;
  for (const auto& b : r.buckets) r.comm_s += b.end_s - b.start_s;
  r.exposed_s = std::max(0.0, r.comm_end_s - r.backward_end_s);
  r.optimizer_s = (p.optimizer_s + p.step_overhead_s) * o.compute_slowdown;
  r.step_s = std::max(r.backward_end_s, r.comm_end_s) + r.optimizer_s;
  return r;
}

}  // namespace vitscale::scaling
