// deepspeed_keys.cpp — the table of DeepSpeed's keys that are no setting here:
// what each changes (nothing, and why) or why it cannot run.
#include "train/deepspeed_keys.h"

#include <algorithm>

namespace vitscale::train {

namespace {

using nlohmann::json;

// A key is refused when `refused` is set and `refuse_when` holds (or is null:
// always); otherwise it is accepted with no effect, for `no_effect`'s reason.
struct DeepSpeedRule {
  const char* key;
  const char* no_effect;
  const char* refused;
  bool (*refuse_when)(const json& value, const TrainConfig& config);
};

bool is_true(const json& v, const TrainConfig&) { return v == true; }
bool is_false(const json& v, const TrainConfig&) { return v == false; }
bool enabled(const json& v, const TrainConfig&) {
  return v.is_object() && v.contains("enabled") && v["enabled"] == true;
}
bool not_one(const json& v, const TrainConfig&) { return v != 1; }
bool offloads(const json& v, const TrainConfig&) {
  // Hugging Face's templates write {"device": "none"} for "no offload".
  if (v.is_object()) return !(v.contains("device") && (v["device"] == "none" || v["device"].is_null()));
  return !(v.is_null() || v == false);
}
bool not_fp32(const json& v, const TrainConfig&) { return !(v.is_null() || v == "fp32" || v == "auto"); }
bool grad_accum_not_fp32(const json& v, const TrainConfig& c) {
  return v.is_object() && v.contains("grad_accum_dtype") && not_fp32(v["grad_accum_dtype"], c);
}
bool false_when_sharded(const json& v, const TrainConfig& c) { return v == false && c.zero_stage >= 1; }

constexpr const char* kOneBit =
    "a parameter of 1-bit Adam, 0/1 Adam or 1-bit LAMB, which are not implemented (optimizer.type is AdamW)";
constexpr const char* kFp16Scaling = "loss scaling belongs to fp16, which is off";
constexpr const char* kBf16Scaling = "bf16 needs no loss scaling";
constexpr const char* kStage3 =
    "a ZeRO stage 3 key that is not implemented here (stage 3 takes stage3_prefetch_bucket_size, "
    "stage3_param_persistence_threshold and stage3_max_live_parameters)";
constexpr const char* kRangeTest =
    "an LRRangeTest parameter: LRRangeTest is not implemented (WarmupCosineLR, WarmupLR, WarmupDecayLR, OneCycle are)";
constexpr const char* kNoProfileTree = "the profile is the whole step's count and rate, not a module tree";
constexpr const char* kOwnCheckpointing =
    "it configures DeepSpeed's checkpointing API, which a model calls; activation_checkpointing.enabled is vitscale's switch";

const DeepSpeedRule kRules[] = {
    // optimizer
    {"optimizer.params.adam_w_mode", "AdamW (decoupled weight decay) is what runs",
     "adam_w_mode false (Adam with L2 regularisation) is not implemented: the optimizer is AdamW", is_false},
    {"optimizer.params.torch_adam", "there is one AdamW per backend, no torch implementation to choose", nullptr,
     nullptr},
    {"optimizer.params.bias_correction", "AdamW always applies bias correction",
     "bias_correction false is not implemented: AdamW always corrects", is_false},
    {"optimizer.params.amsgrad", "amsgrad is off", "amsgrad is not implemented", is_true},
    {"optimizer.params.freeze_step", nullptr, kOneBit, nullptr},
    {"optimizer.params.cuda_aware", nullptr, kOneBit, nullptr},
    {"optimizer.params.comm_backend_name", nullptr, kOneBit, nullptr},
    {"optimizer.params.var_freeze_step", nullptr, kOneBit, nullptr},
    {"optimizer.params.var_update_scaler", nullptr, kOneBit, nullptr},
    {"optimizer.params.local_step_scaler", nullptr, kOneBit, nullptr},
    {"optimizer.params.local_step_clipper", nullptr, kOneBit, nullptr},
    {"optimizer.params.max_coeff", nullptr, kOneBit, nullptr},
    {"optimizer.params.min_coeff", nullptr, kOneBit, nullptr},
    {"optimizer.params.coeff_beta", nullptr, kOneBit, nullptr},
    {"optimizer.params.factor_max", nullptr, kOneBit, nullptr},
    {"optimizer.params.factor_min", nullptr, kOneBit, nullptr},
    {"optimizer.params.factor_threshold", nullptr, kOneBit, nullptr},
    {"zero_allow_untested_optimizer", "ZeRO-1 runs vitscale's own AdamW", nullptr, nullptr},
    {"zero_force_ds_cpu_optimizer", "there is no CPU-offload optimizer", nullptr, nullptr},
    // scheduler
    {"scheduler.params.lr_range_test_min_lr", nullptr, kRangeTest, nullptr},
    {"scheduler.params.lr_range_test_step_size", nullptr, kRangeTest, nullptr},
    {"scheduler.params.lr_range_test_step_rate", nullptr, kRangeTest, nullptr},
    {"scheduler.params.lr_range_test_staircase", nullptr, kRangeTest, nullptr},
    // communication
    {"communication_data_type", "gradients are reduced in fp32", "only fp32 gradient communication is implemented",
     not_fp32},
    {"fp32_allreduce", "gradients are fp32, so every all-reduce is fp32", nullptr, nullptr},
    {"prescale_gradients", "the loss is scaled by 1/train_batch_size, so gradients are averaged before any reduction",
     nullptr, nullptr},
    {"gradient_predivide_factor", "fp32 gradients averaged by the loss scale need no predivision", nullptr, nullptr},
    {"sparse_gradients", "a ViT has no embedding-table gradients to sparsify", nullptr, nullptr},
    // precision
    {"fp16.enabled", "fp16 is off", "fp16 training is not supported; use bf16.enabled", is_true},
    {"fp16.auto_cast", kFp16Scaling, nullptr, nullptr},
    {"fp16.loss_scale", kFp16Scaling, nullptr, nullptr},
    {"fp16.initial_scale_power", kFp16Scaling, nullptr, nullptr},
    {"fp16.loss_scale_window", kFp16Scaling, nullptr, nullptr},
    {"fp16.hysteresis", kFp16Scaling, nullptr, nullptr},
    {"fp16.consecutive_hysteresis", kFp16Scaling, nullptr, nullptr},
    {"fp16.min_loss_scale", kFp16Scaling, nullptr, nullptr},
    {"fp16.fp16_master_weights_and_grads", kFp16Scaling, nullptr, nullptr},
    {"bf16.bf16_master_weights_and_grads", "master weights and gradients are fp32",
     "bf16 master weights and gradients are not implemented: masters and gradients are fp32", is_true},
    {"bf16.immediate_grad_update", "gradients are applied by the one optimizer step", nullptr, nullptr},
    {"bf16.loss_scale", kBf16Scaling, nullptr, nullptr},
    {"bf16.initial_scale_power", kBf16Scaling, nullptr, nullptr},
    {"bf16.loss_scale_window", kBf16Scaling, nullptr, nullptr},
    {"bf16.hysteresis", kBf16Scaling, nullptr, nullptr},
    {"bf16.consecutive_hysteresis", kBf16Scaling, nullptr, nullptr},
    {"bf16.min_loss_scale", kBf16Scaling, nullptr, nullptr},
    {"amp", "amp is off", "Apex AMP is not supported; use bf16.enabled", enabled},
    {"data_types", "gradients accumulate in fp32",
     "only fp32 gradient accumulation (data_types.grad_accum_dtype fp32) is implemented", grad_accum_not_fp32},
    // ZeRO
    {"zero_optimization.allgather_partitions", "parameters are always all-gathered",
     "allgather_partitions false (broadcasts instead of one all-gather) is not implemented", is_false},
    {"zero_optimization.reduce_scatter", "ZeRO-1 always reduce-scatters, stage 0 all-reduces",
     "reduce_scatter false is not implemented at zero_optimization.stage >= 1: ZeRO-1 here always reduce-scatters",
     false_when_sharded},
    {"zero_optimization.contiguous_gradients", "gradient buckets are always contiguous", nullptr, nullptr},
    {"zero_optimization.grad_hooks", "the explicit backward reports ready buckets; there are no hooks", nullptr,
     nullptr},
    {"zero_optimization.round_robin_gradients", "a CPU-offload optimisation, and nothing is offloaded", nullptr,
     nullptr},
    {"zero_optimization.offload_optimizer", "device none: nothing is offloaded",
     "offloading the optimizer to CPU or NVMe is not implemented", offloads},
    {"zero_optimization.offload_param", "device none: nothing is offloaded",
     "offloading parameters to CPU or NVMe is not implemented", offloads},
    {"zero_optimization.cpu_offload", "nothing is offloaded",
     "offloading the optimizer to CPU (cpu_offload) is not implemented", is_true},
    {"zero_optimization.elastic_checkpoint", "checkpoints hold full-length state and load at any world size", nullptr,
     nullptr},
    {"zero_optimization.ignore_unused_parameters", "every ViT parameter gets a gradient", nullptr, nullptr},
    {"zero_optimization.load_from_fp32_weights", "the masters are fp32 and are what checkpoints hold", nullptr,
     nullptr},
    // stage 3's own keys (stage3_prefetch_bucket_size, stage3_param_persistence_threshold,
    // stage3_max_live_parameters) are settings (train_config.cpp); the rest:
    {"zero_optimization.stage3_max_reuse_distance", nullptr, kStage3, nullptr},
    {"zero_optimization.stage3_gather_16bit_weights_on_model_save", nullptr, kStage3, nullptr},
    {"zero_optimization.stage3_gather_fp16_weights_on_model_save", nullptr, kStage3, nullptr},
    {"zero_optimization.stage3_module_granularity_threshold", nullptr, kStage3, nullptr},
    {"zero_optimization.stage3_use_all_reduce_for_fetch_params", nullptr, kStage3, nullptr},
    {"zero_optimization.sub_group_size", "AdamW updates this rank's whole shard in one pass", nullptr, nullptr},
    {"zero_optimization.zero_hpz_partition_size", "1: no hierarchical partitioning",
     "ZeRO++ hierarchical partitioning is not implemented", not_one},
    {"zero_optimization.zero_quantized_weights", "ZeRO++ quantized weights are off",
     "ZeRO++ quantized weights are not implemented", is_true},
    {"zero_optimization.zero_quantized_gradients", "ZeRO++ quantized gradients are off",
     "ZeRO++ quantized gradients are not implemented", is_true},
    // activation checkpointing, profiler, logging
    // DeepSpeed's keys configure its checkpointing API (which a model calls);
    // vitscale's own activation_checkpointing.enabled turns recompute on.
    {"activation_checkpointing.partition_activations", kOwnCheckpointing, nullptr, nullptr},
    {"activation_checkpointing.cpu_checkpointing", kOwnCheckpointing, nullptr, nullptr},
    {"activation_checkpointing.contiguous_memory_optimization", kOwnCheckpointing, nullptr, nullptr},
    {"activation_checkpointing.number_checkpoints", kOwnCheckpointing, nullptr, nullptr},
    {"activation_checkpointing.synchronize_checkpoint_boundary", kOwnCheckpointing, nullptr, nullptr},
    {"activation_checkpointing.profile", kOwnCheckpointing, nullptr, nullptr},
    {"flops_profiler.module_depth", kNoProfileTree, nullptr, nullptr},
    {"flops_profiler.top_modules", kNoProfileTree, nullptr, nullptr},
    {"flops_profiler.detailed", kNoProfileTree, nullptr, nullptr},
    {"dump_state", "the start-up report prints the run's state and the JSONL start record holds the config", nullptr,
     nullptr},
    {"memory_breakdown", "memory is planned up front and printed at start-up", nullptr, nullptr},
    {"timers", "throughput is always logged", nullptr, nullptr},
    {"comms_logger", "communication time is in wall_clock_breakdown's comm figures", nullptr, nullptr},
    // monitors that need a service or a library, and DeepSpeed's launcher
    {"tensorboard", "needs TensorBoard's event writer; the JSONL and csv_monitor hold the same series", nullptr,
     nullptr},
    {"wandb", "needs the Weights & Biases service; the JSONL and csv_monitor hold the same series", nullptr, nullptr},
    {"comet", "needs the Comet service; the JSONL and csv_monitor hold the same series", nullptr, nullptr},
    {"nebula", "needs Azure's Nebula service; checkpoints are written locally", nullptr, nullptr},
    {"autotuning", "the autotuner is DeepSpeed's launcher's; nothing here reads it", nullptr, nullptr},
    {"aio", "asynchronous I/O serves NVMe offload, which is not implemented", nullptr, nullptr},
    // checkpoints (vitscale's own checkpoint section holds DeepSpeed's keys too)
    {"checkpoint.tag_validation", "checkpoints are verified by checksum and config, whatever the tag policy", nullptr,
     nullptr},
    {"checkpoint.load_universal", "checkpoints already load at any world size", nullptr, nullptr},
    {"checkpoint.use_node_local_storage", "rank 0 writes the one checkpoint file", nullptr, nullptr},
    {"checkpoint.parallel_write", "rank 0 writes the one checkpoint file", nullptr, nullptr},
    // features that are not built
    {"elasticity", "elasticity is off", "elastic batch sizes are not implemented: the batch keys fix the batch",
     enabled},
    {"curriculum_learning", "curriculum learning is off", "curriculum learning is not implemented", enabled},
    {"data_efficiency", "data efficiency is off", "DeepSpeed's data efficiency library is not implemented", enabled},
    {"eigenvalue", "eigenvalue is off", "eigenvalue computation is not implemented", enabled},
    {"progressive_layer_drop", "progressive layer drop is off", "progressive layer drop is not implemented", enabled},
    {"quantize_training", "quantize_training is off", "quantized training is not implemented", enabled},
    {"hybrid_engine", "the hybrid engine is off", "the hybrid (RLHF) engine is not implemented", enabled},
    {"compression_training", nullptr,
     "compression training (quantization, pruning, layer reduction) is not implemented", nullptr},
    {"sparse_attention", nullptr, "sparse attention is not implemented: attention is dense", nullptr},
};

const DeepSpeedRule* find_rule(const std::string& key) {
  for (const DeepSpeedRule& r : kRules)
    if (key == r.key) return &r;
  return nullptr;
}

std::string shown(const DeepSpeedKey& k) {
  if (k.value.is_object() || k.value.is_array()) return k.key;
  return k.key + " = " + k.value.dump();
}

}  // namespace

bool is_deepspeed_key(const std::string& key) { return find_rule(key) != nullptr; }

std::vector<std::string> deepspeed_key_names() {
  std::vector<std::string> names;
  for (const DeepSpeedRule& r : kRules) names.emplace_back(r.key);
  return names;
}

void judge_deepspeed_keys(const std::vector<DeepSpeedKey>& keys, const TrainConfig& config,
                          std::vector<std::string>& problems, std::vector<NoEffect>& no_effect) {
  for (const DeepSpeedKey& k : keys) {
    const DeepSpeedRule* rule = find_rule(k.key);
    if (!rule) continue;  // the reader records only keys of the table
    if (rule->refused && (!rule->refuse_when || rule->refuse_when(k.value, config)))
      problems.push_back(k.source + ": " + shown(k) + ": " + rule->refused);
    else
      no_effect.push_back({shown(k), rule->no_effect});
  }
}

std::vector<std::string> group_by_reason(const std::vector<NoEffect>& no_effect) {
  std::vector<std::string> reasons, keys;
  for (const NoEffect& n : no_effect) {
    const auto it = std::find(reasons.begin(), reasons.end(), n.reason);
    if (it == reasons.end()) {
      reasons.push_back(n.reason);
      keys.push_back(n.key);
    } else {
      keys[static_cast<std::size_t>(it - reasons.begin())] += ", " + n.key;
    }
  }
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < reasons.size(); ++i) lines.push_back(keys[i] + " (" + reasons[i] + ")");
  return lines;
}

}  // namespace vitscale::train
