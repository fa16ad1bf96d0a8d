// deepspeed_keys.h — the keys of DeepSpeed's configuration reference that are
// no setting here (internal to train/).
//
// A DeepSpeed user's file must run as it is, so every key of DeepSpeed's JSON
// configuration falls in exactly one class (docs/training.md has the table):
//   honoured             a row of the settings table (config_table.h);
//   accepted, no effect  named once in one start-up line, with the reason;
//   refused              with the reason ("fp16 training is not supported; use bf16.enabled");
// and anything else is an unknown key ("did you mean"). Some keys change class
// with their value or with the resolved config (reduce_scatter false is
// refused at ZeRO stage 1 only), so the reader records them as it finds them
// (TrainOptions::deepspeed_keys) and resolve() judges them.
#pragma once

#include <string>
#include <vector>

#include "train/train_config.h"

namespace vitscale::train {

// True when `key` (a dotted path) is one of these keys. A section-valued key
// ("tensorboard", "zero_optimization.offload_optimizer") covers its whole value.
bool is_deepspeed_key(const std::string& key);
// Every such key, for "did you mean" and to know which sections to read into.
std::vector<std::string> deepspeed_key_names();

struct NoEffect {
  std::string key;  // "zero_optimization.contiguous_gradients = true"
  std::string reason;
};

// Judges the file's DeepSpeed keys against the resolved config: refusals go to
// `problems` (one line each, naming the file and the key), the rest to `no_effect`.
void judge_deepspeed_keys(const std::vector<DeepSpeedKey>& keys, const TrainConfig& config,
                          std::vector<std::string>& problems, std::vector<NoEffect>& no_effect);

// "key, key (reason)" per reason, in order of first appearance.
std::vector<std::string> group_by_reason(const std::vector<NoEffect>& no_effect);

}  // namespace vitscale::train
