// zero_timeline.h — one optimizer step at ZeRO stage 0-3, with or without
// activation checkpointing, replayed on one compute stream and one
// communication channel.
//
// What each stage puts on the channel (S: the flat parameter buffer's bytes,
// p ranks; "volume" is what one rank sends, in units of (p−1)/p · S):
//   stage 0  all-reduce per gradient bucket (overlap on: as backward finishes
//            it; off: after backward)                                  volume 2
//   stage 1  reduce-scatter per bucket, AdamW on the rank's shard, then an
//   stage 2  all-gather of the updated parameters: with overlap_comm one per
//            weight group, left in flight into the next step, each waited for
//            by its group's forward (replayed as the steady state: the step
//            starts with the last one's gathers in flight); overlap off, one
//            gather before the step ends, all exposed. Stages 1 and 2 have the
//            same traffic and timeline and differ in memory only
//            (zero_memory.h)                                           volume 2
//   stage 3  parameters sharded: each weight group's (embedding, block l,
//            final norm + head) all-gather just before its forward and again
//            before its backward, the next group's gather issued as this one
//            starts (prefetch one ahead, overlapped with its compute), as
//            parallel/zero3_params.h's acquire() does it, two buffers
//            emulated: nothing is prefetched across a persistent group, the
//            input or the optimizer, so a step's first gathered group (and
//            one after a persistent group) waits for its whole gather;
//            gradients reduce-scattered per bucket; AdamW on the shard; no
//            gather after the step (the next forward gathers)         volume 3
// Stages 2-3 when every micro-step reduces keep a window of bucket slots
// instead of the full gradient buffer (parallel/grad_window.h, its plan made
// from the same buckets and ready points): backward claims a bucket's slot
// when it first writes into it (at the fraction of its segment's elements
// above the bucket), and a reused slot waits for the reduce-scatter of the
// bucket that held it. That wait is exposed communication inside backward,
// as vit_train counts it (StepEngine::take_pass_wait_seconds).
//            (ZeroOptions: small groups persistent, a group still in its
//            buffer not gathered again, as parallel/zero3_params.h does:
//            a little less)
// Checkpointing adds, inside backward, the forward of every block but the
// last (runtime/vit_model.cpp keeps the last block's working set from the
// forward): one extra forward of L−1 blocks.
//
// Per-part forward times are not in a profile: each part's forward is the
// profile's forward time split like its backward segments (FLOP-proportional
// in an analytic profile; the embedding's backward is one GEMM not two, so its
// forward share is slightly under-counted there).
//
// Who moves a collective while the host computes (ZeroOptions::progress):
// CommProgress::engine, NCCL's own stream or MpiCommunicator's communication
// or polling thread (vit_train's default on CPU): a collective runs beside the
// compute, each at NetworkModel::overlapped's rates; CommProgress::host_calls,
// MPI's non-blocking collectives issued from the compute thread
// (VITSCALE_MPI_PROGRESS=nonblocking): Open MPI's libnbc advances them only
// inside MPI calls, so a collective moves only while the host waits for it and
// nothing is hidden (the reducer's tests at each ready signal move a round or
// two; not modelled: the bound).
// Each collective costs what the network model has measured for its kind
// (NetworkModel::collective_s, overlapped): on CPU ranks vit_allreduce_bench
// and vit_contended_bench measure the reduce-scatter and the all-gather
// themselves, through the calls MpiCommunicator makes; a model without those
// curves charges each half an all-reduce.
// Local copies (StepProfile::copy_bytes_per_s, measured by vit_scaling_profile;
// none without the rate): every stage-3 gather first copies the rank's part of
// the group (1/p of it, fp32) from its master shard into the gather buffer, on
// the compute stream, so stage 3 pays them at one rank too; at one rank a
// reduce-scatter (stages 1-3) is a copy of each bucket into the shard, charged
// to the backward part that finishes it (on more ranks MPI's copies are part of
// the measured collective). Stage 2's add of each micro-step's shard into the
// accumulated one (reduce_every_micro_step) is not charged.
// The channel is FIFO in issue order (gathers and reductions share it, as
// vitscale's single communicator does). While compute and a collective run
// together each runs at NetworkModel::overlapped's rates (CPU ranks share a
// core). Exposed communication = the time the compute stream waits for the
// channel: a gather not yet done, the reductions before the optimizer, the
// parameter all-gather after it. Gradient accumulation: every stage reduces on
// the last micro-step only (local accumulation in the full gradient buffer, as
// parallel/data_parallel.h does) unless reduce_every_micro_step (stages 2-3);
// stage 3 gathers on every micro-step.
#pragma once

#include <cstdint>

#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/timeline.h"

namespace vitscale::scaling {

enum class CommProgress { engine, host_calls };

struct ZeroOptions {
  int stage = 0;               // zero_optimization.stage, 0-3
  bool checkpointing = false;  // activation_checkpointing.enabled
  int param_bytes = 0;         // bytes per parameter element gathered at stages 1-3 (0: the profile's grad_bytes)
  // Stage 3, as parallel/zero3_params.h does it: groups of at most this many
  // elements stay gathered, re-gathered once after each optimizer step
  // (stage3_param_persistence_threshold; vit_train's default is 100,000).
  std::int64_t persistence_elements = 0;
  // Stage 3: a group still in its buffer is not gathered again (the head from
  // forward to backward; the embedding from a backward to the next forward).
  // false: every group before every forward and every backward (3x the traffic).
  bool keep_resident = true;
  // Stages 2-3 with accumulation: reduce-scatter every micro-step
  // (DeepSpeed's way) instead of accumulating locally and reducing on the last.
  bool reduce_every_micro_step = false;
  CommProgress progress = CommProgress::engine;  // see above
};

// The progress of a network's communicator: host_calls for CPU ranks on MPI's
// non-blocking collectives (NetworkModel::mpi_progress "nonblocking"), engine
// otherwise (a progress thread, or NCCL).
CommProgress comm_progress_of(const NetworkModel& net);

struct ZeroStepResult {
  double step_s = 0;          // one optimizer step, wall
  double compute_s = 0;       // at full speed: input, forward, backward, recompute, local copies (all micro-steps)
  double recompute_s = 0;     // of which checkpointing's extra forward
  double optimizer_s = 0;     // optimizer (on the shard at stages 1-3) + per-step overhead
  double comm_s = 0;          // the channel busy
  double exposed_s = 0;       // the compute stream waiting for the channel
  double sent_bytes = 0;      // what one rank sends, all collectives of the step
  double gathered_bytes = 0;  // of which parameter all-gathers
  int collectives = 0;
  double overlap_ratio() const;  // 1 − exposed / comm; 0 without communication
};

// The sent bytes of one collective over a buffer of `bytes` on p ranks.
double allreduce_sent_bytes(double bytes, int p);  // 2(p−1)/p · bytes
double half_sent_bytes(double bytes, int p);       // (p−1)/p · bytes (reduce-scatter or all-gather)

// Replays one optimizer step of `profile` (already at the run's micro-batch).
// Throws std::invalid_argument for a stage outside 0-3.
ZeroStepResult simulate_zero_step(const StepProfile& profile, const NetworkModel& net, const StepOptions& opt,
                                  const ZeroOptions& zero);

}  // namespace vitscale::scaling
