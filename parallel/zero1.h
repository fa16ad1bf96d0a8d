// zero1.h — ZeRO stage 1: the optimizer state sharded over the ranks.
//
// Every rank keeps the full fp32 parameters and gradients, but AdamW's moments
// only for its shard (bucket_plan.h's ShardLayout: a contiguous 1/W of the flat
// buffer), so optimizer memory per rank shrinks by the world size. A step:
//   1. the reducer reduce-scatters each gradient bucket: this rank's shard of
//      the summed gradients lands in shard_grads();
//   2. Σg² of the shard, all-reduced, gives the global norm for clipping;
//   3. AdamW on this rank's shard of the master weights;
//   4. all-gather of the updated parameters, so every rank holds them all, in
//      pieces of at most allgather_bucket_size elements (DeepSpeed's key; the
//      pieces are launched together and waited for together; the gather is in
//      place, so the size bounds each collective's message, not memory).
//      With overlap_gather (overlap_comm at stages 1-2) the pieces are cut at
//      the weight groups' edges too (ParamTable::weight_groups, in forward
//      order: the embedding, blocks 0..L-1, the head) and issued right after
//      AdamW without waiting: the next forward waits for each group just
//      before it first reads it (wait_group, through ViTModel's
//      ParamArrival), so the gather of block l+1 runs while block l computes.
//      The same in-place collectives over the same bytes: the same bits.
// The state saves and loads as full-length flat arrays (the parameter table's
// order), so a checkpoint written at one world size loads at any other.
// ZeRO-2 and ZeRO-3 use the same optimizer (steps 2-3; ZeRO-3 skips step 4:
// its parameters are gathered group by group inside forward and backward,
// zero3_params.h).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "parallel/bucket_plan.h"
#include "parallel/comm_timing.h"
#include "parallel/communicator.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/arena.h"
#include "runtime/param_table.h"

namespace vitscale {

// The in-place all-gather of [begin, begin + range.numel()) of a flat buffer
// sharded as `layout`, `range` being that stretch with this rank's part already
// in place: shards are contiguous and in rank order, so any stretch is the
// concatenation of the ranks' parts of it (ZeRO-1/2's pieces, ZeRO-3's groups).
CommRequest all_gather_range(Communicator& comm, const ShardLayout& layout, TensorView range, std::int64_t begin);

class Zero1Optimizer {
 public:
  // gather_bucket_elements: the most elements one all-gather moves (>= 1).
  // overlap_gather: step() leaves the parameter all-gather in flight (above).
  Zero1Optimizer(Communicator& comm, Backend& backend, const ParamTable& table,
                 std::int64_t gather_bucket_elements = kDefaultGatherBucket, bool overlap_gather = false);
  static constexpr std::int64_t kDefaultGatherBucket = 500'000'000;  // DeepSpeed's allgather_bucket_size

  // The all-gathers of one step: [begin, begin + count) of the flat buffer each.
  std::vector<std::pair<std::int64_t, std::int64_t>> gather_pieces() const;
  bool overlaps_gather() const { return overlap_gather_; }

  const ShardLayout& layout() const { return layout_; }
  std::int64_t shard_begin() const { return adamw_.begin(); }
  std::int64_t shard_count() const { return adamw_.count(); }
  TensorView shard_grads() const { return shard_grads_; }  // (shard_count) f32: the reducer's destination

  // After GradReducer::finish(). params: the model's (n) f32 master weights.
  // The caller refreshes the compute copy afterwards (ViTModel::sync_compute_params),
  // or, with overlap_gather, each group's once wait_group says it arrived.
  void step(TensorView params, const AdamWHyper& hyper, CommTiming* timing = nullptr);
  // overlap_gather: waits for group g's pieces of the last step's all-gather;
  // true when some were still pending (the group's masters just arrived).
  bool wait_group(int group);
  int pending_gather_groups() const;  // groups whose gather is not waited for yet
  // Busy seconds of the overlapped gathers waited for since the last call, and
  // the host's seconds blocked in wait_group (exposed; ~0 on NCCL).
  double take_overlapped_gather_seconds();
  double take_overlapped_wait_seconds() { return std::exchange(overlapped_wait_s_, 0.0); }
  // Steps 2-3 only, on this rank's (shard_count) f32 masters (ZeRO-3's shard).
  void update_shard(TensorView master_shard, const AdamWHyper& hyper, CommTiming* timing = nullptr);
  // The stage the reports name (1, 2 or 3): the optimizer is the same.
  void set_stage(int stage) { stage_ = stage; }
  float read_grad_norm() const { return adamw_.read_grad_norm(); }  // global, after step()

  std::size_t state_bytes() const { return adamw_.bytes(); }  // this rank's moments
  std::size_t full_state_bytes() const;                       // what one rank holds without ZeRO
  std::size_t shard_grad_bytes() const { return shard_grads_arena_.buffer.bytes(); }
  std::string memory_report() const;

  // Collective. Full-length (n) moments in flat order, on every rank.
  void gather_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq);
  // Takes this rank's shard of full-length moments (from a checkpoint of any world size).
  void load_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq);

 private:
  // All-gathers `flat` (n elements, this rank's shard in place) piece by piece;
  // returns the collectives' busy seconds.
  double gather(TensorView flat);

  Communicator& comm_;
  Backend& backend_;
  ShardLayout layout_;
  std::int64_t gather_bucket_;
  bool overlap_gather_;
  std::vector<ParamTable::Range> groups_;              // weight groups, forward order
  std::vector<int> piece_group_;                       // per gather piece: its group (overlap_gather)
  std::vector<std::vector<CommRequest>> in_flight_;    // per group: its pieces not waited for yet
  double overlapped_busy_s_ = 0, overlapped_wait_s_ = 0;
  AdamWOptimizer adamw_;
  Arena shard_grads_arena_;
  TensorView shard_grads_;
  int stage_ = 1;
};

}  // namespace vitscale
