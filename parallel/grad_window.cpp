#include "parallel/grad_window.h"

#include <algorithm>
#include <cstdio>
#include <optional>

namespace vitscale {

namespace {

GradWindowPlan full_window(const BucketPlan& plan) {
  GradWindowPlan w;
  w.full = true;
  w.capacity = plan.total;
  for (const Bucket& b : plan.buckets) w.slot.push_back(b.begin);
  w.reuses.assign(plan.buckets.size(), {});
  return w;
}

// Replays backward's order over a ring of `capacity` elements: slots are
// handed out in launch order, a bucket taking its slot when backward first
// writes into it; fails (nullopt) when a slot would overlap a bucket that is
// not launched yet (still being written).
std::optional<GradWindowPlan> replay(const BucketPlan& plan, const std::vector<std::int64_t>& ready,
                                     std::int64_t capacity) {
  const auto& bs = plan.buckets;
  GradWindowPlan w;
  w.capacity = capacity;
  w.slot.assign(bs.size(), 0);
  w.reuses.assign(bs.size(), {});
  std::size_t next = 0, launched = 0;
  std::int64_t pos = 0;
  for (std::int64_t ready_from : ready) {
    // Backward now writes [ready_from, previous ready point): every bucket
    // reaching above ready_from takes its slot.
    while (next < bs.size() && bs[next].end() > ready_from) {
      const std::int64_t c = bs[next].count;
      if (c > capacity) return std::nullopt;
      if (pos + c > capacity) pos = 0;
      for (std::size_t j = 0; j < next; ++j) {
        const bool overlaps = w.slot[j] < pos + c && pos < w.slot[j] + bs[j].count;
        if (!overlaps) continue;
        if (j >= launched) return std::nullopt;  // still being written
        w.reuses[next].push_back(static_cast<int>(j));
      }
      w.slot[next] = pos;
      pos += c;
      ++next;
    }
    while (launched < bs.size() && bs[launched].begin >= ready_from) ++launched;
  }
  return w;
}

std::int64_t largest_bucket(const BucketPlan& plan) {
  std::int64_t m = 0;
  for (const Bucket& b : plan.buckets) m = std::max(m, b.count);
  return m;
}

GradWindowPlan plan_window(const BucketPlan& plan, const std::vector<std::int64_t>& ready, bool overlap) {
  if (!overlap || plan.buckets.empty()) return full_window(plan);
  // The least the ring must hold: every bucket one stretch of backward writes.
  std::int64_t need = 0, above = plan.total;
  for (std::int64_t r : ready) {
    std::int64_t live = 0;
    for (const Bucket& b : plan.buckets)
      if (b.end() > r && b.begin < above) live += b.count;
    need = std::max(need, live);
    above = r;
  }
  // Twice that lets one stretch be written while the last one's reduce-scatter
  // runs; try a little more when slot boundaries waste the ring's tail.
  for (std::int64_t k = 2; k <= 4 && k * need < plan.total; ++k)
    if (std::optional<GradWindowPlan> w = replay(plan, ready, k * need)) return *w;
  return full_window(plan);
}

}  // namespace

GradWindowPlan plan_grad_window(const BucketPlan& plan, const std::vector<std::int64_t>& ready, bool overlap) {
  GradWindowPlan w = plan_window(plan, ready, overlap);
  w.largest_bucket = largest_bucket(plan);
  return w;
}

GradWindowPlan plan_grad_window(const BucketPlan& plan, const ParamTable& table, bool overlap) {
  return plan_grad_window(plan, table.backward_ready_offsets(), overlap);
}

std::string GradWindowPlan::describe() const {
  char line[200];
  std::snprintf(line, sizeof line, "gradient window %lld elements (%.2f MiB, %.1f buckets of <= %lld elements)%s",
                static_cast<long long>(capacity), static_cast<double>(capacity) * 4.0 / (1024.0 * 1024.0),
                bucket_count(), static_cast<long long>(largest_bucket), full ? ", the full buffer" : "");
  return line;
}

}  // namespace vitscale
