// train_config_json.cpp — the resolved config as JSON (the config file's own
// layout: --print-config, the JSONL start record, checkpoints), the start-up
// notes, and the resume identity check.
#include <algorithm>
#include <filesystem>

#include "train/train_config.h"

namespace vitscale::train {

namespace {

// The params of the resolved scheduler.type only (each type takes its own, as
// DeepSpeed's constructors do), so the printed config reads back as it is.
nlohmann::ordered_json scheduler_params_json(const TrainConfig& c) {
  if (c.scheduler_type == "OneCycle")
    return {{"cycle_min_lr", c.cycle_min_lr},
            {"cycle_max_lr", c.cycle_max_lr},
            {"cycle_first_step_size", c.cycle_first_step_size},
            {"cycle_second_step_size", c.cycle_second_step_size},
            {"cycle_first_stair_count", c.cycle_first_stair_count},
            {"cycle_second_stair_count", c.cycle_second_stair_count},
            {"decay_step_size", c.decay_step_size},
            {"decay_lr_rate", c.decay_lr_rate},
            {"cycle_momentum", c.cycle_momentum},
            {"cycle_min_mom", c.cycle_min_mom},
            {"cycle_max_mom", c.cycle_max_mom},
            {"decay_mom_rate", c.decay_mom_rate}};
  if (c.scheduler_type == "WarmupLR" || c.scheduler_type == "WarmupDecayLR") {
    nlohmann::ordered_json p = {{"warmup_min_lr", c.warmup_min_lr},
                                {"warmup_max_lr", c.warmup_max_lr},
                                {"warmup_num_steps", c.warmup_steps},
                                {"warmup_type", c.warmup_type}};
    if (c.scheduler_type == "WarmupDecayLR") p["total_num_steps"] = c.total_num_steps;
    return p;
  }
  return {{"warmup_num_steps", c.warmup_steps},
          {"total_num_steps", c.total_num_steps},
          {"warmup_min_ratio", c.warmup_min_ratio},
          {"cos_min_ratio", c.cos_min_ratio},
          {"warmup_type", c.warmup_type}};
}

// The value at a dotted key of `j` ("optimizer.params.betas[1]" reads an array element); null when absent.
nlohmann::ordered_json value_at(const nlohmann::ordered_json& j, const std::string& key) {
  const nlohmann::ordered_json* v = &j;
  for (std::size_t begin = 0; begin <= key.size();) {
    const std::size_t dot = std::min(key.find('.', begin), key.size());
    const std::string part = key.substr(begin, dot - begin);
    if (!v->is_object() || !v->contains(part)) return nullptr;
    v = &v->at(part);
    begin = dot + 1;
  }
  return *v;
}

}  // namespace

ViTConfig TrainConfig::vit_config(int channels, int num_classes) const {
  // The resolved shape (preset plus overrides), built the way a preset builds it.
  const ViTPreset shape{model, "", image_size, patch_size, dim, depth, heads, mlp_dim};
  ViTConfig v = shape.config(channels, num_classes);
  v.pooling = pooling == "mean" ? Pooling::mean : Pooling::cls_token;
  v.validate();
  return v;
}

nlohmann::ordered_json TrainConfig::identity_json() const {
  nlohmann::ordered_json j;
  j["model"] = {{"image_size", image_size}, {"patch_size", patch_size}, {"dim", dim},        {"depth", depth},
                {"heads", heads},           {"mlp_dim", mlp_dim},       {"pooling", pooling}};
  j["data"] = {{"dataset", dataset},
               {"train_subset", train_subset},
               {"crop_padding", crop_padding},
               {"hflip", hflip},
               {"randaugment_ops", randaugment_ops},
               {"randaugment_magnitude", randaugment_magnitude},
               {"mixup_alpha", mixup_alpha},
               {"cutmix_alpha", cutmix_alpha}};
  if (holdout > 0) j["data"]["holdout"] = holdout;  // only when used: older checkpoints resume unchanged
  if (dataset == "synthetic")
    j["data"]["synthetic"] = {{"train_count", synthetic_train_count}, {"test_count", synthetic_test_count},
                              {"image_size", synthetic_image_size},   {"channels", synthetic_channels},
                              {"classes", synthetic_classes},         {"noise", synthetic_noise}};
  if (dataset == "imagefolder")
    j["data"]["image_folder"] = {{"channels", image_channels}, {"skip_bad_images", skip_bad_images}};
  j["train_batch_size"] = train_batch_size;
  j["train_micro_batch_size_per_gpu"] = micro_batch_size;
  j["gradient_accumulation_steps"] = gradient_accumulation_steps;
  j["training"] = {{"epochs", epochs},
                   {"max_steps", max_steps},
                   {"seed", seed},
                   {"label_smoothing", label_smoothing},
                   {"warmup_epochs", warmup_epochs}};
  j["optimizer"] = {{"type", optimizer_type},
                    {"params", {{"lr", lr}, {"betas", {beta1, beta2}}, {"eps", eps}, {"weight_decay", weight_decay}}}};
  // Only when used: older checkpoints (no average) resume unchanged.
  if (ema_decay > 0) j["training"]["ema_decay"] = ema_decay, j["training"]["ema_warmup"] = ema_warmup;
  j["gradient_clipping"] = gradient_clipping;
  j["scheduler"] = {{"type", scheduler_type}, {"params", scheduler_params_json(*this)}};
  j["bf16"] = {{"enabled", bf16}};
  j["zero_optimization"] = {{"stage", zero_stage}};
  return j;
}

nlohmann::ordered_json TrainConfig::to_json() const {
  nlohmann::ordered_json j = identity_json();
  j["model"]["preset"] = model;
  j["data"]["dir"] = data_dir;
  j["data"]["image_folder"] = {{"channels", image_channels}, {"skip_bad_images", skip_bad_images}};
  j["data"]["workers"] = loader_workers;
  j["data"]["prefetch"] = prefetch_batches;
  j["training"]["stop_at_step"] = stop_at_step;
  j["training"]["eval_batch_size"] = eval_batch_size;
  j["training"]["ema_decay"] = ema_decay;
  j["training"]["ema_warmup"] = ema_warmup;
  j["zero_optimization"]["reduce_bucket_size"] = reduce_bucket_size;
  j["zero_optimization"]["overlap_comm"] = overlap_comm;
  j["zero_optimization"]["allgather_bucket_size"] = allgather_bucket_size;
  j["zero_optimization"]["reduce_every_micro_step"] = reduce_every_micro_step;
  j["zero_optimization"]["stage3_prefetch_bucket_size"] = stage3_prefetch_bucket_size;
  j["zero_optimization"]["stage3_param_persistence_threshold"] = stage3_param_persistence_threshold;
  j["zero_optimization"]["stage3_max_live_parameters"] = stage3_max_live_parameters;
  j["runtime"] = {{"device", device}, {"threads", threads}, {"tf32", tf32}, {"cuda_graphs", cuda_graphs}};
  j["activation_checkpointing"] = {{"enabled", activation_checkpointing}};
  j["wall_clock_breakdown"] = wall_clock_breakdown;
  j["steps_per_print"] = steps_per_print;
  j["logging"] = {{"metrics_out", metrics_out}};
  j["csv_monitor"] = {{"enabled", csv_monitor}, {"output_path", csv_output_path}, {"job_name", csv_job_name}};
  j["flops_profiler"] = {
      {"enabled", flops_profiler}, {"profile_step", flops_profile_step}, {"output_file", flops_output_file}};
  j["checkpoint"] = {{"save_dir", save_dir}, {"save_every", save_every},     {"keep", keep_checkpoints},
                     {"resume", resume},     {"export_model", export_model}, {"init_from", init_from}};
  return j;
}

std::vector<std::string> config_notes(const TrainConfig& c) {
  std::vector<std::string> notes;
  if (!c.no_effect.empty()) {
    std::string line = "DeepSpeed keys accepted with no effect here:";
    for (std::size_t i = 0; i < c.no_effect.size(); ++i) line += (i ? "; " : " ") + c.no_effect[i];
    notes.push_back(line);
  }
  if (!c.auto_resolved.empty()) {
    std::string line = "\"auto\" resolved:";
    for (std::size_t i = 0; i < c.auto_resolved.size(); ++i) line += (i ? ", " : " ") + c.auto_resolved[i];
    notes.push_back(line);
  }
  return notes;
}

std::string csv_monitor_path(const TrainConfig& c) {
  if (!c.csv_monitor) return "";
  if (!c.csv_output_path.empty())
    return (std::filesystem::path(c.csv_output_path) / c.csv_job_name / "metrics.csv").string();
  return std::filesystem::path(c.metrics_out).replace_extension(".csv").string();
}

std::string auto_value(const TrainConfig& c, const std::string& key) {
  const nlohmann::ordered_json v = value_at(c.to_json(), key);
  return v.is_null() ? "(unused by scheduler.type " + c.scheduler_type + ")" : v.dump();
}

namespace {

// First leaf of `run` (this run's identity) that `ckpt` (a checkpoint's full
// config) lacks or holds with another value: "a.b.c" plus both values.
bool first_difference(const nlohmann::json& ckpt, const nlohmann::json& run, const std::string& path,
                      std::string& where, std::string& va, std::string& vb) {
  if (run.is_object()) {
    for (auto it = run.begin(); it != run.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      const bool present = ckpt.is_object() && ckpt.contains(it.key());
      if (!present) {
        where = p, va = "(absent)", vb = it->dump();
        return true;
      }
      if (first_difference(ckpt.at(it.key()), *it, p, where, va, vb)) return true;
    }
    return false;
  }
  if (ckpt != run) {
    where = path, va = ckpt.dump(), vb = run.dump();
    return true;
  }
  return false;
}

}  // namespace

void check_same_run(const nlohmann::json& checkpoint_config, const nlohmann::json& run_identity,
                    const std::string& checkpoint_path) {
  // How the global batch is split (world size x micro batch x accumulation)
  // may change: one optimizer step covers the same positions of the epoch's
  // order for every split of the same train_batch_size (data/sampler.h), so
  // the schedule, the data order and the augmentation all continue. So may the
  // ZeRO stage: checkpoints hold full-length weights and moments.
  nlohmann::json identity = run_identity;
  for (const char* split : {"train_micro_batch_size_per_gpu", "gradient_accumulation_steps"}) identity.erase(split);
  if (identity.contains("zero_optimization")) identity["zero_optimization"].erase("stage");
  std::string where, va, vb;
  if (first_difference(checkpoint_config, identity, "", where, va, vb))
    throw ConfigError(checkpoint_path + ": config mismatch: " + where + " is " + va + " in the checkpoint but " + vb +
                      " in this run (resume needs the same model, data, global batch, optimizer, schedule and seed; "
                      "world size, micro batch, accumulation and ZeRO stage may change)");
}

}  // namespace vitscale::train
