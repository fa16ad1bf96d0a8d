// profile.h — what one rank spends on one micro-step, layer by layer, and
// which gradients each part of the backward finishes.
//
// The backward of runtime/vit_model.cpp finishes the flat gradient buffer back
// to front: the head, the final norm, block L-1, ..., block 0, the embedding.
// A profile lists those parts in that order, each with its time and the flat
// offset from which every gradient is final once it is done — exactly what
// the model tells the reducer (GradReadyListener::grads_ready_from). That is
// all the timeline needs to know when each bucket can leave.
//
// A profile comes from a measurement (vit_scaling_profile, one rank) or from
// the model's FLOPs and a measured throughput (analytic_profile: the paper's
// T4, of which we know only images per second).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/vit_config.h"

namespace vitscale::scaling {

struct BackwardSegment {
  std::string label;            // "head", "norm", "blocks.11", ..., "embed"
  double seconds = 0;           // compute time of this part
  std::int64_t ready_from = 0;  // after it, every gradient at flat offset >= ready_from is final
};

struct ParamExtent {
  std::int64_t offset = 0;  // elements into the flat buffer
  std::int64_t numel = 0;
};

struct StepProfile {
  std::string source;                     // how it was obtained: measured (machine, steps) or analytic (assumptions)
  int micro_batch = 1;                    // the batch the times below belong to
  double input_s = 0;                     // per micro-step, on the critical path: data wait + host-to-device copy
  double forward_s = 0;                   // per micro-step
  std::vector<BackwardSegment> backward;  // per micro-step, in backward order; the last has ready_from 0
  double optimizer_s = 0;                 // per optimizer step: grad norm, clipping, AdamW, weight refresh
  double step_overhead_s = 0;             // per optimizer step: zero_grad and bookkeeping
  std::vector<ParamExtent> params;        // flat order (ParamTable), for bucket planning
  std::int64_t total_elements = 0;        // flat buffer length, alignment padding included
  int grad_bytes = 4;                     // fp32 gradients
  // A copy between two device buffers on the compute stream, bytes per second
  // (Backend::copy_device of the flat gradient buffer, measured; 0: not
  // measured, local copies cost nothing). ZeRO makes such copies where a
  // collective has no peer to do it: at one rank a reduce-scatter copies each
  // bucket into the shard, and a stage-3 gather first copies the rank's part of
  // the group from its master shard into the gather buffer.
  double copy_bytes_per_s = 0;

  double backward_s() const;
  double compute_s() const { return input_s + forward_s + backward_s(); }  // one micro-step
  double copy_s(double bytes) const { return copy_bytes_per_s > 0 ? bytes / copy_bytes_per_s : 0.0; }
  // The same profile at another micro-batch: per-image parts (input, forward,
  // backward) scale linearly, per-step parts (optimizer, overhead) do not.
  StepProfile at_batch(int micro_batch) const;
  // Rescale forward / backward totals to measured ones, keeping the split.
  void rescale(double forward_s, double backward_s);
  void validate() const;  // throws std::invalid_argument naming the problem
};

// The flat parameter layout and backward segments of a model (runtime/param_table.h).
std::vector<ParamExtent> param_extents(const ViTConfig& cfg, std::int64_t* total_elements);
// Segments of the backward with zero times and their ready_from offsets, in the
// order vit_model.cpp reports them.
std::vector<BackwardSegment> backward_segments(const ViTConfig& cfg);

// Forward FLOPs of one image, by part (multiply-add = 2 FLOPs), GEMMs and attention only.
struct FlopSplit {
  double embed = 0, block = 0, head = 0;  // forward, per image
  double total() const;                   // embed + L·block + head, given depth
  int depth = 0;
};
FlopSplit forward_flops(const ViTConfig& cfg);

struct AnalyticOptions {
  double images_per_s = 0;  // measured training throughput of one rank at micro_batch (fwd+bwd+optimizer)
  int micro_batch = 64;
  double optimizer_s = 0;  // per optimizer step, estimated separately (see paper_preset.cpp)
  std::string source;      // where images_per_s comes from
};
// Splits (micro_batch / images_per_s − optimizer_s) between forward and the
// backward segments in proportion to FLOPs (backward = 2× forward for every
// GEMM except the patch embedding, whose input gradient is not needed).
StepProfile analytic_profile(const ViTConfig& cfg, const AnalyticOptions& opt);

nlohmann::json to_json(const StepProfile& p);
StepProfile profile_from_json(const nlohmann::json& j);
StepProfile load_profile(const std::string& path);  // throws naming the file
void save_profile(const StepProfile& p, const std::string& path);

}  // namespace vitscale::scaling
