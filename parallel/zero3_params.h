// zero3_params.h — ZeRO-3's parameters: each rank keeps only its fp32 shard of
// the masters; forward and backward get each weight group (the embedding, a
// block, the head: ParamTable::weight_groups) all-gathered just before they
// use it, into one of two group-sized working buffers, while the next group's
// gather is already in flight (prefetch); the buffer is reused once released.
//
// The order of groups is fixed (forward 0..G-1, backward G-1..0), the same on
// every rank, so every decision here (which buffer, whether to prefetch,
// whether a buffer still holds the group) is the same on every rank and the
// collectives pair up. Backward's first group (the head) is the one forward
// used last: it is still in its buffer and is not gathered again.
//
// DeepSpeed's stage-3 keys, as they apply to this order:
//   stage3_prefetch_bucket_size:        the next group is prefetched when it has at
//                                       most this many elements (0: never prefetch)
//   stage3_param_persistence_threshold: groups of at most this many elements stay
//                                       gathered for good (re-gathered once after
//                                       each optimizer step): DeepSpeed's small
//                                       parameters that are not worth a collective
//   stage3_max_live_parameters:         elements gathered at once (working buffers
//                                       and persistent groups); two buffers when it
//                                       allows, else one (no prefetch); refused when
//                                       one group does not fit
// The shard layout is ZeRO-1's (bucket_plan.h): a shard boundary may split a
// parameter; a group's gather is one in-place all-gather of its flat range.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "parallel/bucket_plan.h"
#include "parallel/communicator.h"
#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/vit_model.h"

namespace vitscale {

struct Zero3Options {
  std::int64_t prefetch_bucket_elements = 50'000'000;  // zero_optimization.stage3_prefetch_bucket_size
  std::int64_t persistence_threshold = 100'000;        // zero_optimization.stage3_param_persistence_threshold
  std::int64_t max_live_elements = 1'000'000'000;      // zero_optimization.stage3_max_live_parameters
};

class Zero3Params final : public ParamProvider {
 public:
  Zero3Params(Communicator& comm, Backend& backend, const ParamTable& table, const ShardLayout& layout,
              const Zero3Options& options);

  TensorView master_shard() const { return master_; }  // (layout.count(rank)) f32

  TensorView acquire(int group, Pass pass) override;
  void release(int group) override;
  void read_full(std::span<float> host) override;         // collective
  void write_full(std::span<const float> host) override;  // this rank's shard of it
  // After the masters changed (optimizer step): what the buffers hold is stale;
  // the persistent groups are gathered again. Returns those gathers' busy
  // seconds (they block: exposed).
  double refresh();
  // Since the last call: the host's seconds blocked in acquire() waiting for a
  // gather (exposed communication; ~0 on NCCL, whose wait orders the stream),
  // and the busy seconds of the group gathers that completed.
  double take_wait_seconds() { return std::exchange(wait_s_, 0.0); }
  double take_busy_seconds() { return std::exchange(busy_s_, 0.0); }

  std::size_t master_bytes() const { return master_arena_.buffer.bytes(); }
  std::size_t working_bytes() const { return working_arena_.buffer.bytes(); }
  int buffers() const { return static_cast<int>(slots_.size()); }
  int gathers() const { return gathers_; }  // group all-gathers issued so far (tests)
  std::string describe() const;

 private:
  struct Slot {
    TensorView data;    // (largest non-persistent group) f32
    int group = -1;     // what it holds (or is gathering)
    bool in_use = false;
    CommRequest gather;
    bool counted = true;  // its busy seconds are in busy_s_
  };
  void settle(Slot& s, bool timed);  // waits for its gather; timed: into wait_s_
  void start_gather(int group, TensorView dst);
  int slot_holding(int group) const;

  Communicator& comm_;
  Backend& backend_;
  ShardLayout layout_;
  Zero3Options options_;
  std::vector<ParamTable::Range> groups_;
  std::vector<TensorView> persistent_;  // per group: its own buffer, or empty
  Arena master_arena_, working_arena_;
  TensorView master_;
  std::vector<Slot> slots_;
  int gathers_ = 0;
  double wait_s_ = 0, busy_s_ = 0, persistent_busy_s_ = 0;
};

}  // namespace vitscale
