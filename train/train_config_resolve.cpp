// train_config_resolve.cpp — presets, merging, DeepSpeed's batch arithmetic and
// validation: from what was said to a TrainConfig that can run.
#include <cmath>
#include <sstream>

#include "data/dataset_registry.h"
#include "train/config_table.h"
#include "train/train_config.h"

namespace vitscale::train {

namespace {

[[noreturn]] void refuse(const std::string& key, const std::string& why) {
  throw ConfigError(setting_label(key) + " " + why);
}

template <class T>
std::string str(T v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void at_least(const std::string& key, std::int64_t v, std::int64_t lo) {
  if (v < lo) refuse(key, "must be at least " + str(lo) + ", got " + str(v));
}
void in_range(const std::string& key, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (v < lo || v > hi) refuse(key, "must be in [" + str(lo) + ", " + str(hi) + "], got " + str(v));
}
void finite(const std::string& key, double v) {
  if (!std::isfinite(v)) refuse(key, "must be a finite number, got " + str(v));
}
void positive(const std::string& key, double v) {
  finite(key, v);
  if (v <= 0) refuse(key, "must be positive, got " + str(v));
}
void non_negative(const std::string& key, double v) {
  finite(key, v);
  if (v < 0) refuse(key, "must not be negative, got " + str(v));
}
void unit_interval(const std::string& key, double v, bool include_one) {
  finite(key, v);
  if (v < 0 || v > 1 || (!include_one && v == 1))
    refuse(key, std::string("must be in [0, 1") + (include_one ? "]" : ")") + ", got " + str(v));
}
void one_of(const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  refuse(key, "must be one of " + list + ", got '" + v + "'");
}

// DeepSpeed's rule: train_batch_size = micro × accumulation × world size; any two
// fix the third; all three must agree; the micro batch alone means accumulation 1.
void batch_arithmetic(const TrainOptions& o, TrainConfig& c) {
  const int w = c.world_size;
  const auto& tbs = o.train_batch_size;
  const auto& mb = o.micro_batch_size;
  const auto& ga = o.gradient_accumulation_steps;
  if (tbs) at_least("train_batch_size", *tbs, 1);
  if (mb) at_least("train_micro_batch_size_per_gpu", *mb, 1);
  if (ga) at_least("gradient_accumulation_steps", *ga, 1);
  const std::string ws = " x world size " + str(w);
  if (tbs && mb && ga) {
    if (static_cast<std::int64_t>(*mb) * *ga * w != *tbs)
      throw ConfigError("batch sizes contradict each other: train_batch_size " + str(*tbs) +
                        " != train_micro_batch_size_per_gpu " + str(*mb) + " x gradient_accumulation_steps " +
                        str(*ga) + ws);
    c.train_batch_size = *tbs, c.micro_batch_size = *mb, c.gradient_accumulation_steps = *ga;
  } else if (tbs && mb) {
    if (*tbs % (static_cast<std::int64_t>(*mb) * w) != 0)
      throw ConfigError("train_batch_size " + str(*tbs) + " is not a multiple of train_micro_batch_size_per_gpu " +
                        str(*mb) + ws);
    c.train_batch_size = *tbs, c.micro_batch_size = *mb;
    c.gradient_accumulation_steps = static_cast<int>(*tbs / (static_cast<std::int64_t>(*mb) * w));
  } else if (tbs && ga) {
    if (*tbs % (static_cast<std::int64_t>(*ga) * w) != 0)
      throw ConfigError("train_batch_size " + str(*tbs) + " is not a multiple of gradient_accumulation_steps " +
                        str(*ga) + ws);
    c.train_batch_size = *tbs, c.gradient_accumulation_steps = *ga;
    c.micro_batch_size = static_cast<int>(*tbs / (static_cast<std::int64_t>(*ga) * w));
  } else if (mb && ga) {
    c.micro_batch_size = *mb, c.gradient_accumulation_steps = *ga;
    c.train_batch_size = static_cast<int>(static_cast<std::int64_t>(*mb) * *ga * w);
  } else if (tbs) {
    if (*tbs % w != 0) throw ConfigError("train_batch_size " + str(*tbs) + " is not a multiple of world size " + str(w));
    c.train_batch_size = *tbs, c.gradient_accumulation_steps = 1, c.micro_batch_size = *tbs / w;
  } else if (mb) {
    c.micro_batch_size = *mb, c.gradient_accumulation_steps = 1, c.train_batch_size = *mb * w;
  } else if (ga) {
    throw ConfigError("gradient_accumulation_steps alone does not fix the batch: also give train_batch_size or "
                      "train_micro_batch_size_per_gpu");
  } else {
    c.gradient_accumulation_steps = 1;  // the default micro batch (128) per process
    c.train_batch_size = c.micro_batch_size * w;
  }
}

template <class T>
void take(T& field, const std::optional<T>& value) {
  if (value) field = *value;
}

void validate(const TrainConfig& c) {
  in_range("model.image_size", c.image_size, 0, 4096);
  in_range("model.patch_size", c.patch_size, 1, 512);
  in_range("model.dim", c.dim, 1, 16384);
  in_range("model.depth", c.depth, 1, 256);
  in_range("model.heads", c.heads, 1, 1024);
  in_range("model.mlp_dim", c.mlp_dim, 1, 65536);
  one_of("model.pooling", c.pooling, {"cls", "mean"});
  if (c.dim % c.heads != 0)
    throw ConfigError("model.dim (--dim) " + str(c.dim) + " is not divisible by model.heads (--heads) " + str(c.heads));
  if (c.image_size > 0 && c.image_size % c.patch_size != 0)
    throw ConfigError("model.image_size (--image-size) " + str(c.image_size) +
                      " is not divisible by model.patch_size (--patch-size) " + str(c.patch_size));
  if (!data::is_dataset_name(c.dataset)) {
    std::string names;
    for (const auto& n : data::dataset_names()) names += (names.empty() ? "" : ", ") + n;
    refuse("data.dataset", "must be one of " + names + ", got '" + c.dataset + "'");
  }
  at_least("data.train_subset", c.train_subset, 0);
  in_range("data.crop_padding", c.crop_padding, 0, 64);
  in_range("data.randaugment_ops", c.randaugment_ops, 0, 16);
  in_range("data.randaugment_magnitude", c.randaugment_magnitude, 0, 30);
  non_negative("data.mixup_alpha", c.mixup_alpha);
  non_negative("data.cutmix_alpha", c.cutmix_alpha);
  in_range("data.workers", c.loader_workers, 0, 64);
  in_range("data.prefetch", c.prefetch_batches, 2, 64);
  at_least("data.synthetic.train_count", c.synthetic_train_count, 1);
  at_least("data.synthetic.test_count", c.synthetic_test_count, 1);
  in_range("data.synthetic.image_size", c.synthetic_image_size, 1, 1024);
  in_range("data.synthetic.channels", c.synthetic_channels, 1, 3);
  in_range("data.synthetic.classes", c.synthetic_classes, 2, 100000);
  if (!std::isfinite(c.synthetic_noise) || c.synthetic_noise < 0 || c.synthetic_noise > 255)
    refuse("data.synthetic.noise", "must be in [0, 255], got " + str(c.synthetic_noise));
  at_least("training.eval_batch_size", c.eval_batch_size, 0);
  at_least("training.max_steps", c.max_steps, 0);
  if (c.max_steps == 0) at_least("training.epochs", c.epochs, 1);
  at_least("training.stop_at_step", c.stop_at_step, 0);
  unit_interval("training.label_smoothing", c.label_smoothing, false);
  one_of("optimizer.type", c.optimizer_type, {"AdamW", "Adam"});
  positive("optimizer.params.lr", c.lr);
  unit_interval("optimizer.params.betas[0]", c.beta1, false);
  unit_interval("optimizer.params.betas[1]", c.beta2, false);
  positive("optimizer.params.eps", c.eps);
  non_negative("optimizer.params.weight_decay", c.weight_decay);
  non_negative("gradient_clipping", c.gradient_clipping);
  one_of("scheduler.type", c.scheduler_type, {"WarmupCosineLR"});
  one_of("scheduler.params.warmup_type", c.warmup_type, {"linear", "log"});
  at_least("scheduler.params.warmup_num_steps", c.warmup_steps, -1);
  at_least("scheduler.params.total_num_steps", c.total_num_steps, 0);
  non_negative("training.warmup_epochs", c.warmup_epochs);
  unit_interval("scheduler.params.warmup_min_ratio", c.warmup_min_ratio, true);
  unit_interval("scheduler.params.cos_min_ratio", c.cos_min_ratio, true);
  if (c.zero_stage == 2 || c.zero_stage == 3)
    refuse("zero_optimization.stage", "is " + str(c.zero_stage) + ": only stages 0 and 1 are implemented");
  in_range("zero_optimization.stage", c.zero_stage, 0, 1);
  at_least("zero_optimization.reduce_bucket_size", c.reduce_bucket_size, 1);
  one_of("runtime.device", c.device, {"cpu", "cuda", "auto"});
  if (c.bf16 && c.device == "cpu")
    refuse("bf16.enabled", "needs the CUDA backend: the CPU backend computes in fp32 (drop --bf16 or use --device cuda)");
  if (c.cuda_graphs && c.device == "cpu")
    refuse("runtime.cuda_graphs", "needs the CUDA backend (drop --cuda-graphs or use --device cuda)");
  if (c.cuda_graphs && c.world_size > 1)
    refuse("runtime.cuda_graphs", "works at world size 1 only (this run has " + str(c.world_size) +
                                      " ranks): the data-parallel reducer launches its collectives from the host "
                                      "during backward, which a replayed graph cannot do");
  in_range("runtime.threads", c.threads, 0, 1024);
  at_least("steps_per_print", c.steps_per_print, 1);
  at_least("checkpoint.save_every", c.save_every, 0);
  at_least("checkpoint.keep", c.keep_checkpoints, 1);
  if (c.save_every > 0 && c.save_dir.empty())
    throw ConfigError("checkpoint.save_every (--save-every) needs checkpoint.save_dir (--save-dir)");
  if (c.stop_at_step > 0 && c.save_dir.empty())
    throw ConfigError("training.stop_at_step (--stop-at-step) needs checkpoint.save_dir (--save-dir) to save into");
  if (c.max_steps > 0 && c.stop_at_step > c.max_steps)
    throw ConfigError("training.stop_at_step (--stop-at-step) " + str(c.stop_at_step) +
                      " is past training.max_steps (--max-steps) " + str(c.max_steps));
}

}  // namespace

TrainConfig resolve(const TrainOptions& file, const TrainOptions& flags, int world_size) {
  TrainOptions o = file;
  merge_options(o, flags);
  TrainConfig c;
  if (world_size < 1) throw ConfigError("world size must be at least 1, got " + str(world_size));
  c.world_size = world_size;

  take(c.model, o.model);
  const ViTPreset* preset = find_vit_preset(c.model);
  if (!preset) refuse("model.preset", "must be one of " + vit_preset_names() + ", got '" + c.model + "'");
  c.image_size = preset->image_size, c.patch_size = preset->patch_size, c.dim = preset->dim;
  c.depth = preset->depth, c.heads = preset->heads, c.mlp_dim = preset->mlp_dim;
  take(c.image_size, o.image_size);
  take(c.patch_size, o.patch_size);
  take(c.dim, o.dim);
  take(c.depth, o.depth);
  take(c.heads, o.heads);
  take(c.mlp_dim, o.mlp_dim);
  take(c.pooling, o.pooling);

  take(c.dataset, o.dataset);
  take(c.data_dir, o.data_dir);
  take(c.train_subset, o.train_subset);
  take(c.crop_padding, o.crop_padding);
  take(c.hflip, o.hflip);
  take(c.randaugment_ops, o.randaugment_ops);
  take(c.randaugment_magnitude, o.randaugment_magnitude);
  take(c.mixup_alpha, o.mixup_alpha);
  take(c.cutmix_alpha, o.cutmix_alpha);
  take(c.loader_workers, o.loader_workers);
  take(c.prefetch_batches, o.prefetch_batches);
  take(c.synthetic_train_count, o.synthetic_train_count);
  take(c.synthetic_test_count, o.synthetic_test_count);
  take(c.synthetic_image_size, o.synthetic_image_size);
  take(c.synthetic_channels, o.synthetic_channels);
  take(c.synthetic_classes, o.synthetic_classes);
  take(c.synthetic_noise, o.synthetic_noise);

  batch_arithmetic(o, c);
  take(c.eval_batch_size, o.eval_batch_size);

  take(c.epochs, o.epochs);
  take(c.max_steps, o.max_steps);
  take(c.stop_at_step, o.stop_at_step);
  take(c.seed, o.seed);
  take(c.label_smoothing, o.label_smoothing);
  take(c.optimizer_type, o.optimizer_type);
  take(c.lr, o.lr);
  take(c.beta1, o.beta1);
  take(c.beta2, o.beta2);
  take(c.eps, o.eps);
  take(c.weight_decay, o.weight_decay);
  take(c.gradient_clipping, o.gradient_clipping);
  take(c.scheduler_type, o.scheduler_type);
  take(c.warmup_type, o.warmup_type);
  take(c.warmup_steps, o.warmup_steps);
  take(c.warmup_epochs, o.warmup_epochs);
  take(c.total_num_steps, o.total_num_steps);
  take(c.warmup_min_ratio, o.warmup_min_ratio);
  take(c.cos_min_ratio, o.cos_min_ratio);
  take(c.bf16, o.bf16);
  take(c.tf32, o.tf32);
  take(c.zero_stage, o.zero_stage);
  take(c.reduce_bucket_size, o.reduce_bucket_size);
  take(c.overlap_comm, o.overlap_comm);
  take(c.device, o.device);
  take(c.threads, o.threads);
  take(c.cuda_graphs, o.cuda_graphs);
  take(c.wall_clock_breakdown, o.wall_clock_breakdown);
  take(c.steps_per_print, o.steps_per_print);
  take(c.metrics_out, o.metrics_out);
  take(c.save_dir, o.save_dir);
  take(c.resume, o.resume);
  take(c.save_every, o.save_every);
  take(c.keep_checkpoints, o.keep_checkpoints);
  validate(c);
  return c;
}

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
  j["model"] = {{"image_size", image_size}, {"patch_size", patch_size}, {"dim", dim},         {"depth", depth},
                {"heads", heads},           {"mlp_dim", mlp_dim},       {"pooling", pooling}};
  j["data"] = {{"dataset", dataset},
               {"train_subset", train_subset},
               {"crop_padding", crop_padding},
               {"hflip", hflip},
               {"randaugment_ops", randaugment_ops},
               {"randaugment_magnitude", randaugment_magnitude},
               {"mixup_alpha", mixup_alpha},
               {"cutmix_alpha", cutmix_alpha}};
  if (dataset == "synthetic")
    j["data"]["synthetic"] = {{"train_count", synthetic_train_count}, {"test_count", synthetic_test_count},
                              {"image_size", synthetic_image_size},   {"channels", synthetic_channels},
                              {"classes", synthetic_classes},         {"noise", synthetic_noise}};
  j["train_batch_size"] = train_batch_size;
  j["train_micro_batch_size_per_gpu"] = micro_batch_size;
  j["gradient_accumulation_steps"] = gradient_accumulation_steps;
  j["training"] = {{"epochs", epochs},
                   {"max_steps", max_steps},
                   {"seed", seed},
                   {"label_smoothing", label_smoothing},
                   {"warmup_epochs", warmup_epochs}};
  j["optimizer"] = {{"type", optimizer_type},
                    {"params",
                     {{"lr", lr}, {"betas", {beta1, beta2}}, {"eps", eps}, {"weight_decay", weight_decay}}}};
  j["gradient_clipping"] = gradient_clipping;
  j["scheduler"] = {{"type", scheduler_type},
                    {"params",
                     {{"warmup_num_steps", warmup_steps},
                      {"total_num_steps", total_num_steps},
                      {"warmup_min_ratio", warmup_min_ratio},
                      {"cos_min_ratio", cos_min_ratio},
                      {"warmup_type", warmup_type}}}};
  j["bf16"] = {{"enabled", bf16}};
  j["zero_optimization"] = {{"stage", zero_stage}};
  return j;
}

nlohmann::ordered_json TrainConfig::to_json() const {
  nlohmann::ordered_json j = identity_json();
  j["model"]["preset"] = model;
  j["data"]["dir"] = data_dir;
  j["data"]["workers"] = loader_workers;
  j["data"]["prefetch"] = prefetch_batches;
  j["training"]["stop_at_step"] = stop_at_step;
  j["training"]["eval_batch_size"] = eval_batch_size;
  j["zero_optimization"]["reduce_bucket_size"] = reduce_bucket_size;
  j["zero_optimization"]["overlap_comm"] = overlap_comm;
  j["runtime"] = {{"device", device}, {"threads", threads}, {"tf32", tf32}, {"cuda_graphs", cuda_graphs}};
  j["wall_clock_breakdown"] = wall_clock_breakdown;
  j["steps_per_print"] = steps_per_print;
  j["logging"] = {{"metrics_out", metrics_out}};
  j["checkpoint"] = {
      {"save_dir", save_dir}, {"save_every", save_every}, {"keep", keep_checkpoints}, {"resume", resume}};
  return j;
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
  std::string where, va, vb;
  if (first_difference(checkpoint_config, run_identity, "", where, va, vb))
    throw ConfigError(checkpoint_path + ": config mismatch: " + where + " is " + va + " in the checkpoint but " + vb +
                      " in this run (resume needs the same model, data, batch, optimizer, schedule and seed)");
}

}  // namespace vitscale::train
