// flops_profile.h — DeepSpeed's flops_profiler, as vit_train does it: the
// FLOPs one optimizer step computes (runtime/vit_flops.h: GEMMs and attention,
// forward and backward, counted from the model's shape) and the rate the
// measured step achieved. The step is timed on an idle device (synchronised
// before and after), so the rate is honest on a GPU too.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/vit_config.h"

namespace vitscale::train {

struct FlopsProfile {
  std::int64_t step = 0;
  std::int64_t images_per_rank = 0;  // micro batch x accumulation
  int world_size = 1;
  double forward = 0, backward = 0;  // FLOPs of this rank's step
  double seconds = 0;                // the step's wall time
  double flops() const { return forward + backward; }
  double rate() const { return seconds > 0 ? flops() / seconds : 0.0; }  // FLOP/s of one rank
  std::string describe() const;                                          // the console line
  nlohmann::ordered_json to_json() const;                                // the JSONL record's fields
};

FlopsProfile flops_profile(const ViTConfig& model, std::int64_t images_per_rank, int world_size, std::int64_t step,
                           double seconds);

// Writes describe() to `path` (the profiler's output_file); throws naming the file.
void write_flops_profile(const FlopsProfile& profile, const std::string& path);

}  // namespace vitscale::train
