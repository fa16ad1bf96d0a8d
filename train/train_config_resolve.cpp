// train_config_resolve.cpp — presets, merging, DeepSpeed's batch arithmetic and
// validation: from what was said to a TrainConfig that can run. Every problem
// is collected (the file's unknown keys and wrong types, its refused DeepSpeed
// keys, every impossible value) and thrown once, one line each.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "data/dataset_registry.h"
#include "train/config_table.h"
#include "train/deepspeed_keys.h"
#include "train/train_config.h"

namespace vitscale::train {

namespace {

template <class T>
std::string str(T v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Every problem of one run, one line each.
class Problems {
 public:
  explicit Problems(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  void add(std::string line) { lines_.push_back(std::move(line)); }
  void refuse(const std::string& key, const std::string& why) { add(setting_label(key) + " " + why); }
  std::vector<std::string>& lines() { return lines_; }

  void at_least(const std::string& key, std::int64_t v, std::int64_t lo) {
    if (v < lo) refuse(key, "must be at least " + str(lo) + ", got " + str(v));
  }
  void in_range(const std::string& key, std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < lo || v > hi) refuse(key, "must be in [" + str(lo) + ", " + str(hi) + "], got " + str(v));
  }
  bool finite(const std::string& key, double v) {
    if (!std::isfinite(v)) refuse(key, "must be a finite number, got " + str(v));
    return std::isfinite(v);
  }
  void positive(const std::string& key, double v) {
    if (finite(key, v) && v <= 0) refuse(key, "must be positive, got " + str(v));
  }
  void non_negative(const std::string& key, double v) {
    if (finite(key, v) && v < 0) refuse(key, "must not be negative, got " + str(v));
  }
  void unit_interval(const std::string& key, double v, bool include_one) {
    if (finite(key, v) && (v < 0 || v > 1 || (!include_one && v == 1)))
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

 private:
  std::vector<std::string> lines_;
};

// DeepSpeed's rule: train_batch_size = micro × accumulation × world size; any two
// fix the third; all three must agree; the micro batch alone means accumulation 1.
void batch_arithmetic(const TrainOptions& o, TrainConfig& c, Problems& p) {
  const int w = c.world_size;
  const auto& tbs = o.train_batch_size;
  const auto& mb = o.micro_batch_size;
  const auto& ga = o.gradient_accumulation_steps;
  const std::size_t before = p.lines().size();
  if (tbs) p.at_least("train_batch_size", *tbs, 1);
  if (mb) p.at_least("train_micro_batch_size_per_gpu", *mb, 1);
  if (ga) p.at_least("gradient_accumulation_steps", *ga, 1);
  if (p.lines().size() != before) return;
  const std::string ws = " x world size " + str(w);
  if (tbs && mb && ga) {
    if (static_cast<std::int64_t>(*mb) * *ga * w != *tbs)
      return p.add("batch sizes contradict each other: train_batch_size " + str(*tbs) +
                   " != train_micro_batch_size_per_gpu " + str(*mb) + " x gradient_accumulation_steps " + str(*ga) +
                   ws);
    c.train_batch_size = *tbs, c.micro_batch_size = *mb, c.gradient_accumulation_steps = *ga;
  } else if (tbs && mb) {
    if (*tbs % (static_cast<std::int64_t>(*mb) * w) != 0)
      return p.add("train_batch_size " + str(*tbs) + " is not a multiple of train_micro_batch_size_per_gpu " +
                   str(*mb) + ws);
    c.train_batch_size = *tbs, c.micro_batch_size = *mb;
    c.gradient_accumulation_steps = static_cast<int>(*tbs / (static_cast<std::int64_t>(*mb) * w));
  } else if (tbs && ga) {
    if (*tbs % (static_cast<std::int64_t>(*ga) * w) != 0)
      return p.add("train_batch_size " + str(*tbs) + " is not a multiple of gradient_accumulation_steps " + str(*ga) +
                   ws);
    c.train_batch_size = *tbs, c.gradient_accumulation_steps = *ga;
    c.micro_batch_size = static_cast<int>(*tbs / (static_cast<std::int64_t>(*ga) * w));
  } else if (mb && ga) {
    c.micro_batch_size = *mb, c.gradient_accumulation_steps = *ga;
    c.train_batch_size = static_cast<int>(static_cast<std::int64_t>(*mb) * *ga * w);
  } else if (tbs) {
    if (*tbs % w != 0) return p.add("train_batch_size " + str(*tbs) + " is not a multiple of world size " + str(w));
    c.train_batch_size = *tbs, c.gradient_accumulation_steps = 1, c.micro_batch_size = *tbs / w;
  } else if (mb) {
    c.micro_batch_size = *mb, c.gradient_accumulation_steps = 1, c.train_batch_size = *mb * w;
  } else if (ga) {
    p.add(
        "gradient_accumulation_steps alone does not fix the batch: also give train_batch_size or "
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

// Which scheduler.type each schedule parameter belongs to (DeepSpeed's
// constructors take only their own); a parameter given for another type is refused.
struct ScheduleParam {
  const char* key;
  std::initializer_list<const char*> types;
};
const ScheduleParam kScheduleParams[] = {
    {"scheduler.params.warmup_num_steps", {"WarmupCosineLR", "WarmupLR", "WarmupDecayLR"}},
    {"scheduler.params.warmup_type", {"WarmupCosineLR", "WarmupLR", "WarmupDecayLR"}},
    {"scheduler.params.total_num_steps", {"WarmupCosineLR", "WarmupDecayLR"}},
    {"scheduler.params.warmup_min_ratio", {"WarmupCosineLR"}},
    {"scheduler.params.cos_min_ratio", {"WarmupCosineLR"}},
    {"scheduler.params.warmup_min_lr", {"WarmupLR", "WarmupDecayLR"}},
    {"scheduler.params.warmup_max_lr", {"WarmupLR", "WarmupDecayLR"}},
    {"scheduler.params.cycle_min_lr", {"OneCycle"}},
    {"scheduler.params.cycle_max_lr", {"OneCycle"}},
    {"scheduler.params.cycle_first_step_size", {"OneCycle"}},
    {"scheduler.params.cycle_second_step_size", {"OneCycle"}},
    {"scheduler.params.cycle_first_stair_count", {"OneCycle"}},
    {"scheduler.params.cycle_second_stair_count", {"OneCycle"}},
    {"scheduler.params.decay_step_size", {"OneCycle"}},
    {"scheduler.params.decay_lr_rate", {"OneCycle"}},
    {"scheduler.params.cycle_momentum", {"OneCycle"}},
    {"scheduler.params.cycle_min_mom", {"OneCycle"}},
    {"scheduler.params.cycle_max_mom", {"OneCycle"}},
    {"scheduler.params.decay_mom_rate", {"OneCycle"}},
};

void validate_schedule(const TrainOptions& o, const TrainConfig& c, Problems& p) {
  p.one_of("scheduler.type", c.scheduler_type, {"WarmupCosineLR", "WarmupLR", "WarmupDecayLR", "OneCycle"});
  for (const ScheduleParam& param : kScheduleParams) {
    if (!is_set(o, param.key)) continue;
    std::string types;
    bool applies = false;
    for (const char* t : param.types) {
      applies = applies || c.scheduler_type == t;
      types += (types.empty() ? "" : ", ") + std::string(t);
    }
    if (!applies)
      p.refuse(param.key, "does not apply to scheduler.type " + c.scheduler_type + " (a parameter of " + types + ")");
  }
  p.one_of("scheduler.params.warmup_type", c.warmup_type, {"linear", "log"});
  p.at_least("scheduler.params.warmup_num_steps", c.warmup_steps, -1);
  p.at_least("scheduler.params.total_num_steps", c.total_num_steps, 0);
  p.non_negative("training.warmup_epochs", c.warmup_epochs);
  p.unit_interval("scheduler.params.warmup_min_ratio", c.warmup_min_ratio, true);
  p.unit_interval("scheduler.params.cos_min_ratio", c.cos_min_ratio, true);
  if (c.scheduler_type == "WarmupLR" || c.scheduler_type == "WarmupDecayLR") {
    p.non_negative("scheduler.params.warmup_min_lr", c.warmup_min_lr);
    p.positive("scheduler.params.warmup_max_lr", c.warmup_max_lr);
  }
  if (c.scheduler_type == "OneCycle") {
    if (!o.cycle_min_lr) p.refuse("scheduler.params.cycle_min_lr", "is required by scheduler.type OneCycle");
    p.non_negative("scheduler.params.cycle_min_lr", c.cycle_min_lr);
    p.positive("scheduler.params.cycle_max_lr", c.cycle_max_lr);
    p.at_least("scheduler.params.cycle_first_step_size", c.cycle_first_step_size, 1);
    p.at_least("scheduler.params.cycle_second_step_size", c.cycle_second_step_size, 1);
    p.at_least("scheduler.params.cycle_first_stair_count", c.cycle_first_stair_count, 0);
    p.at_least("scheduler.params.cycle_second_stair_count", c.cycle_second_stair_count, 0);
    p.at_least("scheduler.params.decay_step_size", c.decay_step_size, 0);
    p.non_negative("scheduler.params.decay_lr_rate", c.decay_lr_rate);
    p.unit_interval("scheduler.params.cycle_min_mom", c.cycle_min_mom, false);
    p.unit_interval("scheduler.params.cycle_max_mom", c.cycle_max_mom, false);
    p.non_negative("scheduler.params.decay_mom_rate", c.decay_mom_rate);
  }
}

void validate(const TrainOptions& o, const TrainConfig& c, Problems& p) {
  // Left out (not 0) means "the preset's, else the dataset's": 0 given is a mistake.
  if (o.image_size)
    p.in_range("model.image_size", *o.image_size, 1, 4096);
  else
    p.in_range("model.image_size", c.image_size, 0, 4096);
  p.in_range("model.patch_size", c.patch_size, 1, 512);
  p.in_range("model.dim", c.dim, 1, 16384);
  p.in_range("model.depth", c.depth, 1, 256);
  p.in_range("model.heads", c.heads, 1, 1024);
  p.in_range("model.mlp_dim", c.mlp_dim, 1, 65536);
  p.one_of("model.pooling", c.pooling, {"cls", "mean"});
  if (c.heads >= 1 && c.dim % c.heads != 0)
    p.add("model.dim (--dim) " + str(c.dim) + " is not divisible by model.heads (--heads) " + str(c.heads));
  if (c.patch_size >= 1 && c.image_size > 0 && c.image_size % c.patch_size != 0)
    p.add("model.image_size (--image-size) " + str(c.image_size) +
          " is not divisible by model.patch_size (--patch-size) " + str(c.patch_size));
  if (!data::is_dataset_name(c.dataset)) {
    std::string names;
    for (const auto& n : data::dataset_names()) names += (names.empty() ? "" : ", ") + n;
    p.refuse("data.dataset", "must be one of " + names + ", got '" + c.dataset + "'");
  }
  p.at_least("data.train_subset", c.train_subset, 0);
  p.at_least("data.holdout", c.holdout, 0);
  p.in_range("data.crop_padding", c.crop_padding, 0, 64);
  p.in_range("data.randaugment_ops", c.randaugment_ops, 0, 16);
  p.in_range("data.randaugment_magnitude", c.randaugment_magnitude, 0, 30);
  p.non_negative("data.mixup_alpha", c.mixup_alpha);
  p.non_negative("data.cutmix_alpha", c.cutmix_alpha);
  p.in_range("data.workers", c.loader_workers, 0, 64);
  p.in_range("data.prefetch", c.prefetch_batches, 2, 64);
  p.at_least("data.synthetic.train_count", c.synthetic_train_count, 1);
  p.at_least("data.synthetic.test_count", c.synthetic_test_count, 1);
  p.in_range("data.synthetic.image_size", c.synthetic_image_size, 1, 1024);
  p.in_range("data.synthetic.channels", c.synthetic_channels, 1, 3);
  p.in_range("data.synthetic.classes", c.synthetic_classes, 2, 100000);
  if (!std::isfinite(c.synthetic_noise) || c.synthetic_noise < 0 || c.synthetic_noise > 255)
    p.refuse("data.synthetic.noise", "must be in [0, 255], got " + str(c.synthetic_noise));
  if (c.image_channels != 0 && c.image_channels != 1 && c.image_channels != 3)
    p.refuse("data.image_folder.channels",
             "must be 1, 3 or 0 (the train split's majority), got " + str(c.image_channels));
  if (c.dataset == "imagefolder" && c.data_dir.empty())
    p.refuse("data.dir",
             "must name the image folder for data.dataset imagefolder (DIR/train/CLASS/*.jpg, DIR/val/CLASS/*.jpg)");
  p.at_least("training.eval_batch_size", c.eval_batch_size, 0);
  p.at_least("training.max_steps", c.max_steps, 0);
  p.at_least("training.epochs", c.epochs, c.max_steps == 0 ? 1 : 0);
  p.at_least("training.stop_at_step", c.stop_at_step, 0);
  p.unit_interval("training.label_smoothing", c.label_smoothing, false);
  p.unit_interval("training.ema_decay", c.ema_decay, false);
  if (c.ema_decay > 0 && c.zero_stage == 3)
    p.refuse("training.ema_decay",
             "is not supported at zero_optimization.stage 3: no rank holds the whole weights "
             "to average (stages 0-2 keep them on every rank)");
  p.one_of("optimizer.type", c.optimizer_type, {"AdamW", "Adam"});
  p.positive("optimizer.params.lr", c.lr);
  p.unit_interval("optimizer.params.betas[0]", c.beta1, false);
  p.unit_interval("optimizer.params.betas[1]", c.beta2, false);
  p.positive("optimizer.params.eps", c.eps);
  p.non_negative("optimizer.params.weight_decay", c.weight_decay);
  p.non_negative("gradient_clipping", c.gradient_clipping);
  validate_schedule(o, c, p);
  p.in_range("zero_optimization.stage", c.zero_stage, 0, 3);
  p.at_least("zero_optimization.stage3_prefetch_bucket_size", c.stage3_prefetch_bucket_size, 0);
  p.at_least("zero_optimization.stage3_param_persistence_threshold", c.stage3_param_persistence_threshold, 0);
  p.at_least("zero_optimization.stage3_max_live_parameters", c.stage3_max_live_parameters, 1);
  if (c.reduce_every_micro_step && c.zero_stage < 2)
    p.refuse("zero_optimization.reduce_every_micro_step",
             "needs zero_optimization.stage 2 or 3 (stages 0 and 1 reduce once, from the full gradient buffer)");
  if (c.zero_stage >= 2 && c.cuda_graphs)
    p.refuse("runtime.cuda_graphs", "does not work at zero_optimization.stage " + str(c.zero_stage) +
                                        ": the host hands out gradient-window slots (and, at stage 3, gathers every "
                                        "block's parameters) inside backward, which a replayed graph cannot do");
  if (c.zero_stage == 3 && c.bf16)
    p.refuse("bf16.enabled", "is not implemented at zero_optimization.stage 3: ZeRO-3 gathers the fp32 masters and "
                             "computes on them (a bf16 copy per gathered block is not built)");
  p.at_least("zero_optimization.reduce_bucket_size", c.reduce_bucket_size, 1);
  p.at_least("zero_optimization.allgather_bucket_size", c.allgather_bucket_size, 1);
  p.one_of("runtime.device", c.device, {"cpu", "cuda", "auto"});
  if (c.bf16 && c.device == "cpu")
    p.refuse("bf16.enabled",
             "needs the CUDA backend: the CPU backend computes in fp32 (drop --bf16 or use --device cuda)");
  if (c.cuda_graphs && c.device == "cpu")
    p.refuse("runtime.cuda_graphs", "needs the CUDA backend (drop --cuda-graphs or use --device cuda)");
  if (c.cuda_graphs && c.world_size > 1)
    p.refuse("runtime.cuda_graphs", "works at world size 1 only (this run has " + str(c.world_size) +
                                        " ranks): the data-parallel reducer launches its collectives from the host "
                                        "during backward, which a replayed graph cannot do");
  p.in_range("runtime.threads", c.threads, 0, 1024);
  p.at_least("steps_per_print", c.steps_per_print, 1);
  p.at_least("checkpoint.save_every", c.save_every, 0);
  p.at_least("checkpoint.keep", c.keep_checkpoints, 1);
  if (c.save_every > 0 && c.save_dir.empty())
    p.add("checkpoint.save_every (--save-every) needs checkpoint.save_dir (--save-dir)");
  if (c.stop_at_step > 0 && c.save_dir.empty())
    p.add("training.stop_at_step (--stop-at-step) needs checkpoint.save_dir (--save-dir) to save into");
  if (c.max_steps > 0 && c.stop_at_step > c.max_steps)
    p.add("training.stop_at_step (--stop-at-step) " + str(c.stop_at_step) +
          " is past training.max_steps (--max-steps) " + str(c.max_steps));
  if (c.csv_monitor && c.csv_output_path.empty() && c.metrics_out.empty())
    p.refuse("csv_monitor.enabled",
             "needs csv_monitor.output_path (--csv-output-path) or logging.metrics_out "
             "(--metrics-out) to write beside");
  if (c.csv_monitor && !c.csv_output_path.empty() && c.csv_job_name.empty())
    p.refuse("csv_monitor.job_name", "must not be empty: it names the folder under csv_monitor.output_path");
  p.at_least("flops_profiler.profile_step", c.flops_profile_step, 1);
}

// Keys that are settings here but change nothing in this configuration.
void settings_without_effect(const TrainOptions& o, const TrainConfig& c, std::vector<NoEffect>& no_effect) {
  if (o.allgather_bucket_size && c.zero_stage == 0)
    no_effect.push_back({"zero_optimization.allgather_bucket_size = " + str(c.allgather_bucket_size),
                         "no parameter all-gather at zero_optimization.stage 0"});
  const bool warmup_peak = (c.scheduler_type == "WarmupLR" || c.scheduler_type == "WarmupDecayLR") && o.warmup_max_lr &&
                           *o.warmup_max_lr != c.lr;
  const bool cycle_peak = c.scheduler_type == "OneCycle" && o.cycle_max_lr && *o.cycle_max_lr != c.lr;
  if (o.lr && (warmup_peak || cycle_peak))
    no_effect.push_back({"optimizer.params.lr = " + str(*o.lr), std::string("scheduler.params.") +
                                                                    (warmup_peak ? "warmup_max_lr" : "cycle_max_lr") +
                                                                    " sets the rate, as in DeepSpeed"});
  if ((o.beta1 || o.beta2) && c.scheduler_type == "OneCycle" && c.cycle_momentum)
    no_effect.push_back({"optimizer.params.betas",
                         "OneCycle's cycle_momentum sets beta1 (and beta2 0.99) every step, as in DeepSpeed"});
}

}  // namespace

TrainConfig resolve(const TrainOptions& file, const TrainOptions& flags, int world_size) {
  TrainOptions o = file;
  merge_options(o, flags);
  TrainConfig c;
  Problems p(file.problems);
  if (world_size < 1) throw ConfigError("world size must be at least 1, got " + str(world_size));
  c.world_size = world_size;

  take(c.model, o.model);
  if (const ViTPreset* preset = find_vit_preset(c.model)) {
    c.image_size = preset->image_size, c.patch_size = preset->patch_size, c.dim = preset->dim;
    c.depth = preset->depth, c.heads = preset->heads, c.mlp_dim = preset->mlp_dim;
  } else {
    p.refuse("model.preset", "must be one of " + vit_preset_names() + ", got '" + c.model + "'");
  }
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
  take(c.holdout, o.holdout);
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
  take(c.image_channels, o.image_channels);
  take(c.skip_bad_images, o.skip_bad_images);

  batch_arithmetic(o, c, p);
  take(c.eval_batch_size, o.eval_batch_size);

  take(c.epochs, o.epochs);
  take(c.max_steps, o.max_steps);
  take(c.stop_at_step, o.stop_at_step);
  take(c.seed, o.seed);
  take(c.label_smoothing, o.label_smoothing);
  take(c.ema_decay, o.ema_decay);
  take(c.ema_warmup, o.ema_warmup);
  take(c.optimizer_type, o.optimizer_type);
  take(c.lr, o.lr);
  take(c.beta1, o.beta1);
  take(c.beta2, o.beta2);
  take(c.eps, o.eps);
  take(c.weight_decay, o.weight_decay);
  take(c.gradient_clipping, o.gradient_clipping);
  take(c.scheduler_type, o.scheduler_type);
  c.warmup_type = o.warmup_type.value_or(c.scheduler_type == "WarmupCosineLR" ? "linear" : "log");
  take(c.warmup_steps, o.warmup_steps);
  take(c.warmup_epochs, o.warmup_epochs);
  take(c.total_num_steps, o.total_num_steps);
  take(c.warmup_min_ratio, o.warmup_min_ratio);
  take(c.cos_min_ratio, o.cos_min_ratio);
  take(c.warmup_min_lr, o.warmup_min_lr);
  c.warmup_max_lr = o.warmup_max_lr.value_or(c.lr);
  take(c.cycle_min_lr, o.cycle_min_lr);
  c.cycle_max_lr = o.cycle_max_lr.value_or(c.lr);
  take(c.decay_lr_rate, o.decay_lr_rate);
  take(c.cycle_first_step_size, o.cycle_first_step_size);
  c.cycle_second_step_size = o.cycle_second_step_size.value_or(c.cycle_first_step_size);
  take(c.cycle_first_stair_count, o.cycle_first_stair_count);
  c.cycle_second_stair_count = o.cycle_second_stair_count.value_or(c.cycle_first_stair_count);
  take(c.decay_step_size, o.decay_step_size);
  take(c.cycle_momentum, o.cycle_momentum);
  take(c.cycle_min_mom, o.cycle_min_mom);
  take(c.cycle_max_mom, o.cycle_max_mom);
  take(c.decay_mom_rate, o.decay_mom_rate);
  take(c.bf16, o.bf16);
  take(c.tf32, o.tf32);
  take(c.zero_stage, o.zero_stage);
  take(c.reduce_bucket_size, o.reduce_bucket_size);
  const auto& autos = file.auto_keys;
  const auto is_auto = [&](const char* key) { return std::find(autos.begin(), autos.end(), key) != autos.end(); };
  // Hugging Face's integration sizes an "auto" reduce bucket as hidden_size².
  if (!o.reduce_bucket_size && is_auto("zero_optimization.reduce_bucket_size"))
    c.reduce_bucket_size = static_cast<std::int64_t>(c.dim) * c.dim;
  take(c.allgather_bucket_size, o.allgather_bucket_size);
  take(c.overlap_comm, o.overlap_comm);
  take(c.reduce_every_micro_step, o.reduce_every_micro_step);
  take(c.stage3_prefetch_bucket_size, o.stage3_prefetch_bucket_size);
  take(c.stage3_param_persistence_threshold, o.stage3_param_persistence_threshold);
  // Hugging Face's "auto": 0.9·hidden² to prefetch, 10·hidden to persist.
  if (!o.stage3_prefetch_bucket_size && is_auto("zero_optimization.stage3_prefetch_bucket_size"))
    c.stage3_prefetch_bucket_size = static_cast<std::int64_t>(0.9 * c.dim * c.dim);
  if (!o.stage3_param_persistence_threshold && is_auto("zero_optimization.stage3_param_persistence_threshold"))
    c.stage3_param_persistence_threshold = static_cast<std::int64_t>(10) * c.dim;
  take(c.stage3_max_live_parameters, o.stage3_max_live_parameters);
  take(c.device, o.device);
  take(c.threads, o.threads);
  take(c.cuda_graphs, o.cuda_graphs);
  take(c.activation_checkpointing, o.activation_checkpointing);
  take(c.wall_clock_breakdown, o.wall_clock_breakdown);
  take(c.steps_per_print, o.steps_per_print);
  take(c.metrics_out, o.metrics_out);
  take(c.save_dir, o.save_dir);
  take(c.resume, o.resume);
  take(c.export_model, o.export_model);
  take(c.init_from, o.init_from);
  take(c.save_every, o.save_every);
  take(c.keep_checkpoints, o.keep_checkpoints);
  take(c.csv_monitor, o.csv_monitor);
  take(c.csv_output_path, o.csv_output_path);
  take(c.csv_job_name, o.csv_job_name);
  take(c.flops_profiler, o.flops_profiler);
  take(c.flops_profile_step, o.flops_profile_step);
  take(c.flops_output_file, o.flops_output_file);

  std::vector<NoEffect> no_effect;
  judge_deepspeed_keys(file.deepspeed_keys, c, p.lines(), no_effect);
  settings_without_effect(o, c, no_effect);
  validate(o, c, p);
  if (!p.lines().empty()) {
    std::string all;
    for (const std::string& line : p.lines()) all += (all.empty() ? "" : "\n") + line;
    throw ConfigError(all);
  }
  c.no_effect = group_by_reason(no_effect);
  for (const std::string& key : autos) c.auto_resolved.push_back(key + " = " + auto_value(c, key));
  return c;
}

}  // namespace vitscale::train
