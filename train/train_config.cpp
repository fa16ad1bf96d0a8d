// train_config.cpp — the settings table, the JSON config reader and the command line.
// (resolve(), presets and validation are in train_config_resolve.cpp.)
#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>

#include "train/config_table.h"
#include "train/deepspeed_keys.h"

namespace vitscale::train {

namespace {

using O = TrainOptions;

// Keep rows grouped as --help shows them. JSON keys at the top level and under
// optimizer/scheduler/bf16/zero_optimization are DeepSpeed's; model/data/
// training/runtime/logging/checkpoint sections are vitscale's own.
const Setting kSettings[] = {
    // model
    {"model.preset", "--model", "Model", "model preset: vit-cpu (default: small, for 28x28 on a CPU), vit-tiny, vit-small, vit-base (patch 4, 32x32), vit-b16-224 (ViT-B/16 at 224x224, images resized)", &O::model},
    {"model.image_size", "--image-size", "Model", "model input side in pixels (images are resized to it); leave it out for the preset's, else the dataset's (0 is refused)", &O::image_size},
    {"model.patch_size", "--patch-size", "Model", "patch side in pixels (must divide the image size)", &O::patch_size},
    {"model.dim", "--dim", "Model", "embedding width D", &O::dim},
    {"model.depth", "--depth", "Model", "number of transformer blocks", &O::depth},
    {"model.heads", "--heads", "Model", "attention heads (must divide dim)", &O::heads},
    {"model.mlp_dim", "--mlp-dim", "Model", "MLP hidden width", &O::mlp_dim},
    {"model.pooling", "--pooling", "Model", "classifier input: cls (class token) or mean (mean of the tokens)", &O::pooling},
    // data
    {"data.dataset", "--dataset", "Data", "fashion-mnist, cifar10, cifar100, cifar100-coarse, synthetic or imagefolder (your own images: --data-dir DIR with DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg)", &O::dataset},
    {"data.dir", "--data-dir", "Data", "where the dataset's files are (default: the usual places; the error lists them)", &O::data_dir},
    {"data.train_subset", "--train-subset", "Data", "train on a fixed random subset of this many images (0: all)", &O::train_subset},
    {"data.holdout", "--holdout", "Data", "evaluate on the train split's last N images and train on the rest; the test split is not read (0: off)", &O::holdout},
    {"data.crop_padding", "--crop-padding", "Data", "random crop after zero-padding by this many pixels (0: off)", &O::crop_padding},
    {"data.hflip", "--hflip", "Data", "random horizontal flip (--no-hflip to turn off)", &O::hflip},
    {"data.randaugment_ops", "--randaugment-ops", "Data", "RandAugment: ops per image (0: off)", &O::randaugment_ops},
    {"data.randaugment_magnitude", "--randaugment-magnitude", "Data", "RandAugment magnitude, 0..30", &O::randaugment_magnitude},
    {"data.mixup_alpha", "--mixup-alpha", "Data", "mixup Beta(a, a) parameter (0: off)", &O::mixup_alpha},
    {"data.cutmix_alpha", "--cutmix-alpha", "Data", "cutmix Beta(a, a) parameter (0: off)", &O::cutmix_alpha},
    {"data.workers", "--loader-workers", "Data", "background threads that decode and augment batches", &O::loader_workers},
    {"data.prefetch", "--prefetch-batches", "Data", "batches prepared ahead of the one training", &O::prefetch_batches},
    {"data.synthetic.train_count", "--synthetic-train", "Data", "synthetic dataset: train images", &O::synthetic_train_count},
    {"data.synthetic.test_count", "--synthetic-test", "Data", "synthetic dataset: test images", &O::synthetic_test_count},
    {"data.synthetic.image_size", "--synthetic-image-size", "Data", "synthetic dataset: image side", &O::synthetic_image_size},
    {"data.synthetic.channels", "--synthetic-channels", "Data", "synthetic dataset: channels (1..3)", &O::synthetic_channels},
    {"data.synthetic.classes", "--synthetic-classes", "Data", "synthetic dataset: classes", &O::synthetic_classes},
    {"data.synthetic.noise", "--synthetic-noise", "Data", "synthetic dataset: per-pixel noise amplitude (0..255)", &O::synthetic_noise},
    {"data.image_folder.channels", "--image-channels", "Data", "imagefolder: the model's channels, 1 (grey; colour files converted) or 3 (RGB; grey files replicated); 0: the train split's majority", &O::image_channels},
    {"data.image_folder.skip_bad_images", "--skip-bad-images", "Data", "imagefolder: leave out files that do not decode, counted and listed at start-up (default: the first one is an error naming it)", &O::skip_bad_images},
    // batch
    {"train_batch_size", "--train-batch-size", "Batch", "global batch: micro batch x gradient accumulation x world size", &O::train_batch_size},
    {"train_micro_batch_size_per_gpu", "--micro-batch-size", "Batch", "images per forward/backward on one process", &O::micro_batch_size},
    {"gradient_accumulation_steps", "--gradient-accumulation-steps", "Batch", "micro batches per optimizer step", &O::gradient_accumulation_steps},
    {"training.eval_batch_size", "--eval-batch-size", "Batch", "images per evaluation forward (default: the micro batch)", &O::eval_batch_size},
    // training
    {"training.epochs", "--epochs", "Training", "passes over the train split", &O::epochs},
    {"training.max_steps", "--max-steps", "Training", "optimizer steps to run; > 0 overrides --epochs (default: 0, off)", &O::max_steps},
    {"training.stop_at_step", "--stop-at-step", "Training", "save a checkpoint and exit at this step as if pre-empted; the schedule is still the full run's (default: 0, off)", &O::stop_at_step},
    {"training.seed", "--seed", "Training", "fixes everything random: initialisation, data order, augmentation", &O::seed},
    {"training.label_smoothing", "--label-smoothing", "Training", "label smoothing epsilon in [0, 1)", &O::label_smoothing},
    {"training.ema_decay", "--ema-decay", "Training", "keep an exponential moving average of the weights with this decay (timm's --model-ema-decay, e.g. 0.999) and evaluate and export it instead of the live weights; both are evaluated each epoch (default: 0, off; not at zero_optimization.stage 3)", &O::ema_decay},
    {"training.ema_warmup", "--ema-warmup", "Training", "ramp the average's decay up as min(decay, (1 + step) / (10 + step)), so that the first steps' weights do not linger (default: true; --no-ema-warmup for a fixed decay)", &O::ema_warmup},
    {"training.warmup_epochs", "--warmup-epochs", "Schedule", "warmup length in epochs when --warmup-steps is not given", &O::warmup_epochs},
    // optimizer
    {"optimizer.type", "--optimizer", "Optimizer", "AdamW (DeepSpeed's Adam, whose adam_w_mode defaults to true, is accepted as AdamW)", &O::optimizer_type},
    {"optimizer.params.lr", "--lr", "Optimizer", "peak learning rate", &O::lr},
    {"optimizer.params.betas[0]", "--beta1", "Optimizer", "AdamW beta1 (JSON: optimizer.params.betas[0])", &O::beta1},
    {"optimizer.params.betas[1]", "--beta2", "Optimizer", "AdamW beta2 (JSON: optimizer.params.betas[1])", &O::beta2},
    {"optimizer.params.eps", "--eps", "Optimizer", "AdamW epsilon", &O::eps},
    {"optimizer.params.weight_decay", "--weight-decay", "Optimizer", "decoupled weight decay (not applied to biases, norms, cls token, pos embed)", &O::weight_decay},
    {"gradient_clipping", "--gradient-clipping", "Optimizer", "clip the global gradient norm to this (0: off)", &O::gradient_clipping},
    // schedule
    {"scheduler.type", "--scheduler", "Schedule", "WarmupCosineLR (warmup, then cosine decay to cos_min_ratio x lr)", &O::scheduler_type},
    {"scheduler.params.warmup_num_steps", "--warmup-steps", "Schedule", "warmup length in optimizer steps (default: --warmup-epochs epochs)", &O::warmup_steps},
    {"scheduler.params.total_num_steps", "--total-num-steps", "Schedule", "length of the schedule (default: the run's length)", &O::total_num_steps},
    {"scheduler.params.warmup_min_ratio", "--warmup-min-ratio", "Schedule", "warmup starts at this fraction of lr", &O::warmup_min_ratio},
    {"scheduler.params.cos_min_ratio", "--cos-min-ratio", "Schedule", "cosine ends at this fraction of lr", &O::cos_min_ratio},
    {"scheduler.params.warmup_type", "--warmup-type", "Schedule", "linear or log (default: linear for WarmupCosineLR, DeepSpeed's log for WarmupLR and WarmupDecayLR)", &O::warmup_type},
    {"scheduler.params.warmup_min_lr", "--warmup-min-lr", "Schedule", "WarmupLR, WarmupDecayLR: the rate warmup starts from (default: 0)", &O::warmup_min_lr},
    {"scheduler.params.warmup_max_lr", "--warmup-max-lr", "Schedule", "WarmupLR, WarmupDecayLR: the rate warmup reaches (default: --lr)", &O::warmup_max_lr},
    {"scheduler.params.cycle_min_lr", "--cycle-min-lr", "Schedule", "OneCycle: the cycle's low rate (required by OneCycle)", &O::cycle_min_lr},
    {"scheduler.params.cycle_max_lr", "--cycle-max-lr", "Schedule", "OneCycle: the cycle's peak rate (default: --lr)", &O::cycle_max_lr},
    {"scheduler.params.cycle_first_step_size", "--cycle-first-step-size", "Schedule", "OneCycle: updates from the low rate to the peak (default: 2000)", &O::cycle_first_step_size},
    {"scheduler.params.cycle_second_step_size", "--cycle-second-step-size", "Schedule", "OneCycle: updates from the peak back down (default: the first's)", &O::cycle_second_step_size},
    {"scheduler.params.cycle_first_stair_count", "--cycle-first-stair-count", "Schedule", "OneCycle: stairs of the rising half (0: continuous)", &O::cycle_first_stair_count},
    {"scheduler.params.cycle_second_stair_count", "--cycle-second-stair-count", "Schedule", "OneCycle: stairs of the falling half (default: the first's)", &O::cycle_second_stair_count},
    {"scheduler.params.decay_step_size", "--decay-step-size", "Schedule", "OneCycle: after the cycle, the rate is cycle_min_lr / (1 + decay_lr_rate x steps / this) (0: no decay)", &O::decay_step_size},
    {"scheduler.params.decay_lr_rate", "--decay-lr-rate", "Schedule", "OneCycle: the post-cycle decay rate (0: no decay)", &O::decay_lr_rate},
    {"scheduler.params.cycle_momentum", "--cycle-momentum", "Schedule", "OneCycle: cycle AdamW's beta1 inversely to the rate, beta2 0.99, as DeepSpeed (default: true)", &O::cycle_momentum},
    {"scheduler.params.cycle_min_mom", "--cycle-min-mom", "Schedule", "OneCycle: beta1 at the peak rate (default: 0.8)", &O::cycle_min_mom},
    {"scheduler.params.cycle_max_mom", "--cycle-max-mom", "Schedule", "OneCycle: beta1 at the low rate (default: 0.9)", &O::cycle_max_mom},
    {"scheduler.params.decay_mom_rate", "--decay-mom-rate", "Schedule", "OneCycle: after the cycle, beta1 = cycle_max_mom x (1 + this x steps / decay_step_size)", &O::decay_mom_rate},
    // precision and parallelism
    {"bf16.enabled", "--bf16", "Precision and parallelism", "bf16 activations and weight copies, fp32 master weights (CUDA only)", &O::bf16},
    {"runtime.tf32", "--tf32", "Precision and parallelism", "allow TF32 tensor cores for fp32 GEMMs (CUDA only)", &O::tf32},
    {"zero_optimization.stage", "--zero-stage", "Precision and parallelism", "0: plain data parallel; 1: optimizer state sharded across ranks; 2: gradients too (each rank keeps its gradient shard and a bucket-sized window); 3: parameters too (each block gathered before its forward and its backward)", &O::zero_stage},
    {"zero_optimization.reduce_bucket_size", "--reduce-bucket-size", "Precision and parallelism", "gradient bucket size in elements", &O::reduce_bucket_size},
    {"zero_optimization.overlap_comm", "--overlap-comm", "Precision and parallelism", "overlap gradient all-reduce with backward", &O::overlap_comm},
    {"zero_optimization.allgather_bucket_size", "--allgather-bucket-size", "Precision and parallelism", "ZeRO-1: elements per parameter all-gather (the gather after the update is split into pieces of at most this many)", &O::allgather_bucket_size},
    {"zero_optimization.reduce_every_micro_step", "--reduce-every-micro-step", "Precision and parallelism", "ZeRO-2/3 with gradient accumulation: reduce-scatter every micro-step into the shard (DeepSpeed's way: no full gradient buffer, accumulation-steps times the traffic) instead of accumulating in the full buffer and reducing once (vitscale's key; default false)", &O::reduce_every_micro_step},
    {"zero_optimization.stage3_prefetch_bucket_size", "--stage3-prefetch-bucket-size", "Precision and parallelism", "ZeRO-3: prefetch the next block's parameters while this one computes when it has at most this many elements (0: no prefetch)", &O::stage3_prefetch_bucket_size},
    {"zero_optimization.stage3_param_persistence_threshold", "--stage3-param-persistence-threshold", "Precision and parallelism", "ZeRO-3: weight groups (embedding, block, head) of at most this many elements stay gathered, re-gathered once per step", &O::stage3_param_persistence_threshold},
    {"zero_optimization.stage3_max_live_parameters", "--stage3-max-live-parameters", "Precision and parallelism", "ZeRO-3: the most parameter elements gathered at once (below two blocks: one gather buffer, no prefetch)", &O::stage3_max_live_parameters},
    // device
    {"runtime.device", "--device", "Device", "cpu, cuda or auto (cuda when built with CUDA and a GPU is present)", &O::device},
    {"runtime.threads", "--threads", "Device", "CPU backend threads (0: OpenMP's default)", &O::threads},
    {"activation_checkpointing.enabled", "--activation-checkpointing", "Precision and parallelism", "keep only each block's input and recompute the block inside backward: less activation memory, about one more forward of compute, the same gradients bit for bit", &O::activation_checkpointing},
    {"runtime.cuda_graphs", "--cuda-graphs", "Device", "capture forward, backward and the optimizer step as CUDA graphs and replay them (CUDA, world size 1)", &O::cuda_graphs},
    // logging
    {"wall_clock_breakdown", "--wall-clock-breakdown", "Logging", "split step time into data wait, forward, backward, communication, optimizer (synchronises the device)", &O::wall_clock_breakdown},
    {"steps_per_print", "--steps-per-print", "Logging", "log a line and a JSONL record every this many steps", &O::steps_per_print},
    {"logging.metrics_out", "--metrics-out", "Logging", "JSONL metrics file (one record per logged step, per evaluation, and a final one)", &O::metrics_out},
    {"csv_monitor.enabled", "--csv-monitor", "Logging", "also write the logged steps and evaluations as CSV: output_path/job_name/metrics.csv, else beside --metrics-out", &O::csv_monitor},
    {"csv_monitor.output_path", "--csv-output-path", "Logging", "csv_monitor: the folder for job_name/metrics.csv", &O::csv_output_path},
    {"csv_monitor.job_name", "--csv-job-name", "Logging", "csv_monitor: the job's folder under output_path", &O::csv_job_name},
    {"flops_profiler.enabled", "--flops-profiler", "Logging", "print one step's FLOPs (GEMMs and attention, forward and backward) and the achieved FLOP/s", &O::flops_profiler},
    {"flops_profiler.profile_step", "--flops-profile-step", "Logging", "the step the FLOPs profiler measures", &O::flops_profile_step},
    {"flops_profiler.output_file", "--flops-output-file", "Logging", "also write the profile to this file (default: the console only)", &O::flops_output_file},
    // checkpoints
    {"checkpoint.save_dir", "--save-dir", "Checkpoints", "directory for checkpoints (ckpt-<step>.safetensors and a 'latest' pointer)", &O::save_dir},
    {"checkpoint.save_every", "--save-every", "Checkpoints", "also save every this many steps (0: only at the end and when interrupted)", &O::save_every},
    {"checkpoint.keep", "--keep-checkpoints", "Checkpoints", "checkpoints kept in --save-dir (oldest removed first)", &O::keep_checkpoints},
    {"checkpoint.export_model", "--export-model", "Checkpoints", "at the end, write the trained model to this directory: model.safetensors (weights only, timm names) and model.json (timm VisionTransformer arguments, class names, normalisation)", &O::export_model},
    {"checkpoint.init_from", "--init-from", "Checkpoints", "start from these weights (a timm-named ViT state dict in safetensors, e.g. another run's model.safetensors): pos_embed resampled to this grid, a fresh head for another class count; optimizer and schedule start fresh", &O::init_from},
    {"checkpoint.resume", "--resume", "Checkpoints", "continue from a checkpoint file, or from the latest in a directory", &O::resume},
};

std::string json_repr(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Every JSON key the reader knows: leaves (from the table) and the sections above them.
struct KnownKeys {
  std::set<std::string> leaves, sections;
  std::set<std::string> deepspeed;  // deepspeed_keys.h: no settings, judged by resolve()
  KnownKeys() {
    for (const Setting& s : kSettings) {
      std::string key = s.json_key;
      if (const auto bracket = key.find('['); bracket != std::string::npos) key = key.substr(0, bracket);
      leaves.insert(key);
      add_sections(key);
    }
    for (const std::string& key : deepspeed_key_names()) {
      deepspeed.insert(key);
      add_sections(key);
    }
  }
  void add_sections(const std::string& key) {
    for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1))
      sections.insert(key.substr(0, dot));
  }
  std::string suggestion(const std::string& key) const {
    std::string best;
    std::size_t best_d = 3;  // suggest only close misspellings
    for (const auto* set : {&leaves, &sections, &deepspeed})
      for (const std::string& k : *set)
        if (const std::size_t d = edit_distance(key, k); d < best_d) best_d = d, best = k;
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
  }
};

const Setting* find_by_key(const std::string& key) {
  for (const Setting& s : kSettings)
    if (key == s.json_key) return &s;
  return nullptr;
}

template <class Int>
Int json_integer(const nlohmann::json& v, const std::string& what, const std::string& key) {
  // DeepSpeed configs often write sizes as 5e8: accept a float holding an integer.
  double d = 0;
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    const auto i = v.get<std::int64_t>();
    if constexpr (std::is_unsigned_v<Int>) {
      if (i < 0) throw ConfigError(what + ": key '" + key + "' must be a non-negative integer, got " + json_repr(v));
    }
    d = static_cast<double>(i);
    if (static_cast<long double>(i) < static_cast<long double>(std::numeric_limits<Int>::lowest()) ||
        static_cast<long double>(i) > static_cast<long double>(std::numeric_limits<Int>::max()))
      throw ConfigError(what + ": key '" + key + "' is out of range: " + json_repr(v));
    return static_cast<Int>(i);
  }
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (static_cast<long double>(u) > static_cast<long double>(std::numeric_limits<Int>::max()))
      throw ConfigError(what + ": key '" + key + "' is out of range: " + json_repr(v));
    return static_cast<Int>(u);
  }
  if (v.is_number_float()) {
    d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(std::numeric_limits<Int>::lowest()) &&
        d <= static_cast<double>(std::numeric_limits<Int>::max()))
      return static_cast<Int>(d);
  }
  throw ConfigError(what + ": key '" + key + "' must be an integer, got " + json_repr(v));
}

void assign_from_json(TrainOptions& o, const Setting& s, const nlohmann::json& v, const std::string& what) {
  const std::string key = s.json_key;
  std::visit(
      [&](auto member) {
        using Opt = std::remove_reference_t<decltype(o.*member)>;
        using T = typename Opt::value_type;
        if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean()) throw ConfigError(what + ": key '" + key + "' must be true or false, got " + json_repr(v));
          o.*member = v.get<bool>();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) throw ConfigError(what + ": key '" + key + "' must be a string, got " + json_repr(v));
          o.*member = v.get<std::string>();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!v.is_number()) throw ConfigError(what + ": key '" + key + "' must be a number, got " + json_repr(v));
          o.*member = v.get<double>();
        } else {
          o.*member = json_integer<T>(v, what, key);
        }
      },
      s.member);
}

// vitscale's own sections; every other key is DeepSpeed's.
bool is_vitscale_key(const std::string& key) {
  const std::string section = key.substr(0, key.find('.'));
  for (const char* own : {"model", "data", "training", "runtime", "logging", "checkpoint"})
    if (section == own) return true;
  return false;
}

// Reads one object; every problem is recorded (o.problems), none stops the read.
void read_object(TrainOptions& o, const nlohmann::json& obj, const std::string& prefix, const KnownKeys& known,
                 const std::string& what) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const auto& v = *it;
    const bool setting = key == "optimizer.params.betas" || known.leaves.count(key);
    try {
      if (setting && v == "auto" && !is_vitscale_key(key)) {
        o.auto_keys.push_back(key);  // Hugging Face's "auto": resolved from the other keys
      } else if (setting && v.is_null() && !is_vitscale_key(key)) {
        // DeepSpeed's null (Python's None) means its default: as if absent.
      } else if (key == "optimizer.params.betas") {
        if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
          throw ConfigError(what + ": key 'optimizer.params.betas' must be an array of two numbers, got " +
                            json_repr(v));
        o.beta1 = v[0].get<double>();
        o.beta2 = v[1].get<double>();
      } else if (setting) {
        assign_from_json(o, *find_by_key(key), v, what);
      } else if (known.deepspeed.count(key)) {
        o.deepspeed_keys.push_back({key, v, what});
      } else if (known.sections.count(key)) {
        if (!v.is_object())
          throw ConfigError(what + ": key '" + key + "' must be an object (a section), got " + json_repr(v));
        read_object(o, v, key, known, what);
      } else {
        throw ConfigError(what + ": unknown key '" + key + "'" + known.suggestion(key));
      }
    } catch (const ConfigError& e) {
      o.problems.emplace_back(e.what());
    }
  }
}

}  // namespace

std::span<const Setting> settings() { return kSettings; }

std::string setting_label(const std::string& json_key) {
  for (const Setting& s : kSettings)
    if (json_key == s.json_key) return json_key + " (" + s.flag + ")";
  return json_key;
}

void merge_options(TrainOptions& base, const TrainOptions& over) {
  for (const Setting& s : kSettings)
    std::visit(
        [&](auto member) {
          if ((over.*member).has_value()) base.*member = over.*member;
        },
        s.member);
}

bool is_set(const TrainOptions& options, const std::string& json_key) {
  const Setting* s = find_by_key(json_key);
  return s && std::visit([&](auto member) { return (options.*member).has_value(); }, s->member);
}

TrainOptions parse_config_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": the config must be a JSON object, got " + json_repr(j));
  static const KnownKeys known;
  TrainOptions o;
  read_object(o, j, "", known, what);
  return o;
}

TrainOptions load_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(path + ": is a directory, not a config file");
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann's message names the byte; keep only its own line.
    std::string msg = e.what();
    if (const auto p = msg.find("parse error"); p != std::string::npos) msg = msg.substr(p);
    throw ConfigError(path + ": not valid JSON: " + msg);
  }
  return parse_config_json(j, path);
}

namespace {

// " (default: X)" for --help, from a default TrainConfig; "" for settings whose
// default depends on something else (the preset, the dataset) or is empty.
std::string default_note(const std::string& json_key) {
  if (json_key.rfind("model.", 0) == 0 || json_key == "data.synthetic.image_size") return "";
  static const nlohmann::json defaults = nlohmann::json::parse(TrainConfig{}.to_json().dump());
  const nlohmann::json* v = &defaults;
  std::string key = json_key;
  int index = -1;
  if (const auto b = key.find('['); b != std::string::npos) index = key[b + 1] - '0', key = key.substr(0, b);
  for (std::size_t begin = 0;;) {
    const auto dot = key.find('.', begin);
    const std::string part = key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    if (!v->is_object() || !v->contains(part)) return "";
    v = &v->at(part);
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  if (index >= 0) v = &v->at(static_cast<std::size_t>(index));
  if (v->is_string()) return v->get<std::string>().empty() ? "" : " (default: " + v->get<std::string>() + ")";
  return " (default: " + v->dump() + ")";
}

const CLI::Validator kNonNegativeInteger(
    [](std::string& v) {
      return v.find_first_not_of(" ") != std::string::npos && v[v.find_first_not_of(" ")] == '-'
                 ? std::string("must be a non-negative integer, got " + v)
                 : std::string();
    },
    "UINT");

// Builds the CLI11 app over `cl`; shared by parsing and help_text().
std::unique_ptr<CLI::App> make_app(CommandLine& cl) {
  auto app = std::make_unique<CLI::App>(
      "vit_train: train a Vision Transformer (hand-written kernels, explicit backward).\n"
      "With no arguments: the small CPU model on Fashion-MNIST, on the GPU when one is present.\n"
      "Settings come from defaults, then --config FILE (DeepSpeed keys where the meaning is the same),\n"
      "then these flags. Each flag's JSON key is shown in brackets.",
      "vit_train");
  app->option_defaults()->always_capture_default(false);
  app->get_formatter()->column_width(36);
  app->add_option("--config", cl.config_path, "JSON config file (DeepSpeed-style keys; unknown keys are refused)")
      ->group("General");
  app->add_flag("--print-config", cl.print_config, "print the resolved configuration as JSON and exit")->group("General");
  TrainOptions& o = cl.options;
  for (const Setting& s : kSettings) {
    const std::string own = s.help;
    const std::string help =
        own + (own.find("(default") == std::string::npos ? default_note(s.json_key) : "") + "  [" + s.json_key + "]";
    std::visit(
        [&](auto member) {
          using Opt = std::remove_reference_t<decltype(o.*member)>;
          using T = typename Opt::value_type;
          if constexpr (std::is_same_v<T, bool>) {
            const std::string names = std::string(s.flag) + ",!--no-" + std::string(s.flag).substr(2);
            app->add_flag_function(names, [&o, member](std::int64_t count) { o.*member = count > 0; }, help)
                ->group(s.group);
          } else {
            CLI::Option* opt =
                app->add_option_function<T>(s.flag, [&o, member](const T& v) { o.*member = v; }, help)->group(s.group);
            // strtoull would wrap "-1" to 2^64 - 1; the JSON reader refuses it too.
            if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) opt->check(kNonNegativeInteger);
          }
        },
        s.member);
  }
  return app;
}

}  // namespace

std::optional<CommandLine> parse_command_line(int argc, const char* const* argv, int& exit_code) {
  CommandLine cl;
  auto app = make_app(cl);
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app->help();
    exit_code = 0;
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    std::cerr << "vit_train: error: " << e.what() << " (see --help)\n";
    exit_code = 2;
    return std::nullopt;
  }
  return cl;
}

std::string help_text() {
  CommandLine cl;
  return make_app(cl)->help();
}

}  // namespace vitscale::train
