// grad_window.h — ZeRO-2/3's gradient working area: bucket slots in a ring.
//
// Under ZeRO-2/3 a rank keeps only its shard of the reduced gradients, so the
// full-size gradient buffer is needed only while backward writes a bucket and
// the bucket's reduce-scatter reads it. The window gives every bucket (in
// launch order) a slot of a ring: a slot is reused once the reduce-scatter of
// the bucket that held it has completed. The ready order is known up front
// (ParamTable::backward_ready_offsets), so the slots, and the smallest ring
// that never reuses the slot of a bucket backward is still writing, are
// planned before step 1 by replaying that order; nothing is decided per step.
//
// The window needs the buckets launched during backward (overlap_comm on);
// with overlap off every bucket waits for finish(), and the plan is the full
// buffer (slot = bucket offset).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/bucket_plan.h"
#include "runtime/param_table.h"

namespace vitscale {

struct GradWindowPlan {
  std::int64_t capacity = 0;       // elements of the window
  std::vector<std::int64_t> slot;  // per bucket (launch order): its slot's offset in the window
  // per bucket: the earlier buckets whose slots it overlaps; their
  // reduce-scatters must have completed before its slot is zeroed and written.
  std::vector<std::vector<int>> reuses;
  bool full = false;  // the window is the whole flat buffer (slot = bucket.begin)
  std::int64_t largest_bucket = 0;  // elements of the plan's largest bucket
  // The window's size in buckets (capacity / largest bucket): what the
  // start-up log states and the scaling simulator's memory plan uses
  // (tools/scaling/zero_memory.cpp calls plan_grad_window too).
  double bucket_count() const {
    return largest_bucket > 0 ? static_cast<double>(capacity) / static_cast<double>(largest_bucket) : 0.0;
  }
  std::string describe() const;
};

// overlap: buckets are launched as backward reports them ready.
GradWindowPlan plan_grad_window(const BucketPlan& plan, const ParamTable& table, bool overlap);
// The same from backward's ready offsets (ParamTable::backward_ready_offsets'
// order), for a caller with the layout but no table (the scaling simulator).
GradWindowPlan plan_grad_window(const BucketPlan& plan, const std::vector<std::int64_t>& ready, bool overlap);

}  // namespace vitscale
