// train_config.h — everything a vit_train run is told, where it comes from, and
// how it is checked.
//
// Three layers, last wins: built-in defaults (and the model preset), a JSON
// config file (--config, DeepSpeed's keys where the meaning is the same), then
// command-line flags. Every setting is one row of a table (train_config.cpp)
// that names its JSON key, its flag and its help text, so the JSON parser, the
// CLI11 options and the error messages can never disagree about a name.
//
// Parsing produces TrainOptions (every field optional: "was it said?"); resolve()
// merges the layers, applies the preset and DeepSpeed's batch arithmetic
// (train_batch_size = micro batch × gradient accumulation × world size; any two
// determine the third) and validates, throwing ConfigError with one line that
// names the key and the flag.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/vit_config.h"

namespace vitscale::train {

// A configuration that cannot work; what() is the lines to print, one per problem.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A key of DeepSpeed's configuration reference that is no setting here, as the
// file gave it; resolve() judges it (accepted with no effect, or refused).
struct DeepSpeedKey {
  std::string key;  // dotted path: "zero_optimization.contiguous_gradients"
  nlohmann::json value;
  std::string source;  // the file, for messages
};

// What was said, by one source (the JSON file or the command line). Unset means
// "not said here"; resolve() fills in the defaults.
struct TrainOptions {
  // --- model -------------------------------------------------------------------
  std::optional<std::string> model;  // preset name
  std::optional<int> image_size, patch_size, dim, depth, heads, mlp_dim;
  std::optional<std::string> pooling;  // "cls" | "mean"
  // --- data --------------------------------------------------------------------
  std::optional<std::string> dataset, data_dir;
  std::optional<std::int64_t> train_subset, holdout;
  std::optional<int> crop_padding;
  std::optional<bool> hflip;
  std::optional<int> randaugment_ops, randaugment_magnitude;
  std::optional<double> mixup_alpha, cutmix_alpha;
  std::optional<int> loader_workers, prefetch_batches;
  std::optional<std::int64_t> synthetic_train_count, synthetic_test_count;
  std::optional<int> synthetic_image_size, synthetic_channels, synthetic_classes;
  std::optional<double> synthetic_noise;
  std::optional<int> image_channels;
  std::optional<bool> skip_bad_images;
  // --- batch (DeepSpeed) ----------------------------------------------------------
  std::optional<int> train_batch_size, micro_batch_size, gradient_accumulation_steps, eval_batch_size;
  // --- training --------------------------------------------------------------------
  std::optional<int> epochs;
  std::optional<std::int64_t> max_steps, stop_at_step;
  std::optional<std::uint64_t> seed;
  std::optional<double> label_smoothing;
  std::optional<double> ema_decay;
  std::optional<bool> ema_warmup;
  // --- optimizer and schedule (DeepSpeed) ------------------------------------------
  std::optional<std::string> optimizer_type;
  std::optional<double> lr, beta1, beta2, eps, weight_decay, gradient_clipping;
  std::optional<std::string> scheduler_type, warmup_type;
  std::optional<std::int64_t> warmup_steps, total_num_steps;
  std::optional<double> warmup_epochs, warmup_min_ratio, cos_min_ratio;
  std::optional<double> warmup_min_lr, warmup_max_lr;  // WarmupLR, WarmupDecayLR
  std::optional<double> cycle_min_lr, cycle_max_lr, decay_lr_rate, cycle_min_mom, cycle_max_mom, decay_mom_rate;
  std::optional<std::int64_t> cycle_first_step_size, cycle_second_step_size, cycle_first_stair_count,
      cycle_second_stair_count, decay_step_size;  // OneCycle
  std::optional<bool> cycle_momentum;
  // --- precision and parallelism (DeepSpeed) ------------------------------------------
  std::optional<bool> bf16, tf32;
  std::optional<int> zero_stage;
  std::optional<std::int64_t> reduce_bucket_size, allgather_bucket_size;
  std::optional<bool> overlap_comm, reduce_every_micro_step;
  std::optional<std::int64_t> stage3_prefetch_bucket_size, stage3_param_persistence_threshold,
      stage3_max_live_parameters;
  // --- device ---------------------------------------------------------------------
  std::optional<std::string> device;
  std::optional<int> threads;
  std::optional<bool> cuda_graphs;
  std::optional<bool> activation_checkpointing;
  // --- logging and checkpoints --------------------------------------------------------
  std::optional<bool> wall_clock_breakdown;
  std::optional<int> steps_per_print;
  std::optional<std::string> metrics_out, save_dir, resume, export_model, init_from;
  std::optional<std::int64_t> save_every;
  std::optional<int> keep_checkpoints;
  // --- monitors and profiler (DeepSpeed) -------------------------------------------------
  std::optional<bool> csv_monitor, flops_profiler;
  std::optional<std::string> csv_output_path, csv_job_name, flops_output_file;
  std::optional<std::int64_t> flops_profile_step;

  // Filled by the JSON reader only (a command line has none of these):
  std::vector<std::string> auto_keys;        // DeepSpeed keys written as "auto": resolved as if absent
  std::vector<DeepSpeedKey> deepspeed_keys;  // DeepSpeed keys outside the settings table (deepspeed_keys.h)
  std::vector<std::string> problems;         // every unknown key and wrong type, one line each; resolve() throws them
};

// The resolved configuration of a run: every value decided and checked.
struct TrainConfig {
  // model
  std::string model = "vit-cpu";
  int image_size = 0;  // 0 until resolve(): then the model's input side
  int patch_size = 7, dim = 96, depth = 4, heads = 4, mlp_dim = 192;
  std::string pooling = "cls";
  // data
  std::string dataset = "fashion-mnist";
  std::string data_dir;           // empty: the usual places (data/dataset_registry.h)
  std::int64_t train_subset = 0;  // 0: the whole train split
  std::int64_t holdout = 0;       // > 0: evaluate on the train split's last `holdout` images, train on the rest
  int crop_padding = 0;           // off: in a short schedule on centred Fashion-MNIST, crops cost more than they give
  bool hflip = true;
  // The Fashion-MNIST default regularises a 32-epoch schedule: RandAugment
  // (1 op, magnitude 5) and mixup (alpha 0.2), chosen on the holdout
  // (docs/results/fashion_mnist.md). --randaugment-ops 0 / --mixup-alpha 0 turn them off.
  int randaugment_ops = 1, randaugment_magnitude = 5;
  double mixup_alpha = 0.2, cutmix_alpha = 0.0;
  int loader_workers = 1, prefetch_batches = 2;
  std::int64_t synthetic_train_count = 4096, synthetic_test_count = 1024;
  int synthetic_image_size = 32, synthetic_channels = 3, synthetic_classes = 10;
  double synthetic_noise = 48.0;
  int image_channels = 0;        // imagefolder: 1 or 3; 0 until the trainer takes the train split's majority
  bool skip_bad_images = false;  // imagefolder: leave out (and list) files that do not decode
  // batch: train_batch_size == micro_batch_size * gradient_accumulation_steps * world_size
  int train_batch_size = 128, micro_batch_size = 128, gradient_accumulation_steps = 1, eval_batch_size = 0;
  int world_size = 1;  // from the launcher, not from the config
  // training
  int epochs = 32;  // the Fashion-MNIST default: chosen on the holdout (docs/results/fashion_mnist.md)
  std::int64_t max_steps = 0;     // > 0: stop after this many optimizer steps (overrides epochs)
  std::int64_t stop_at_step = 0;  // > 0: save and exit at this step as if pre-empted (the schedule is unchanged)
  std::uint64_t seed = 0;
  double label_smoothing = 0.1;
  // The weights' moving average (train/weight_ema.h): 0 off; else evaluated
  // and exported instead of the live weights (both are evaluated and logged).
  double ema_decay = 0.0;
  bool ema_warmup = true;  // d_t = min(decay, (1 + t) / (10 + t))
  // optimizer (AdamW) and schedule (warmup then cosine)
  std::string optimizer_type = "AdamW";
  double lr = 3e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.05, gradient_clipping = 1.0;
  std::string scheduler_type = "WarmupCosineLR";
  std::string warmup_type = "linear";  // unset: linear for WarmupCosineLR, DeepSpeed's log for the others
  std::int64_t warmup_steps = -1;      // -1: from warmup_epochs
  double warmup_epochs = 0.5;
  std::int64_t total_num_steps = 0;  // 0: the run's length
  double warmup_min_ratio = 0.0, cos_min_ratio = 0.01;
  double warmup_min_lr = 0.0, warmup_max_lr = 0.0;  // WarmupLR/WarmupDecayLR; max unset: lr
  // OneCycle (DeepSpeed's defaults; cycle_max_lr unset: lr; the second half's
  // size and stair count unset: the first's)
  double cycle_min_lr = 0.0, cycle_max_lr = 0.0, decay_lr_rate = 0.0;
  std::int64_t cycle_first_step_size = 2000, cycle_second_step_size = 2000;
  std::int64_t cycle_first_stair_count = 0, cycle_second_stair_count = 0, decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8, cycle_max_mom = 0.9, decay_mom_rate = 0.0;
  // precision and parallelism
  bool bf16 = false, tf32 = true;
  int zero_stage = 0;
  std::int64_t reduce_bucket_size = 25'000'000;      // elements, as DeepSpeed counts
  std::int64_t allgather_bucket_size = 500'000'000;  // elements per ZeRO-1 parameter all-gather (DeepSpeed's default)
  bool overlap_comm = true;
  // ZeRO-2/3 with accumulation: reduce-scatter every micro-step (DeepSpeed's
  // way, no full gradient buffer) instead of once from the full buffer.
  bool reduce_every_micro_step = false;
  // ZeRO-3 (parallel/zero3_params.h), DeepSpeed's defaults.
  std::int64_t stage3_prefetch_bucket_size = 50'000'000;
  std::int64_t stage3_param_persistence_threshold = 100'000;
  std::int64_t stage3_max_live_parameters = 1'000'000'000;
  // device
  std::string device = "auto";            // cpu | cuda | auto
  int threads = 0;                        // CPU backend threads; 0: OpenMP's default
  bool cuda_graphs = false;               // capture the step's phases as CUDA graphs (train/step_graphs.h)
  bool activation_checkpointing = false;  // keep block inputs only; recompute in backward (runtime/vit_model.h)
  // logging and checkpoints
  bool wall_clock_breakdown = false;
  int steps_per_print = 50;
  std::string metrics_out, save_dir, resume;
  std::string export_model;     // directory for the finished model (model.safetensors + model.json); "" : none
  std::string init_from;        // a timm-named safetensors file to fine-tune from (runtime/pretrained.h); "" : none
  std::int64_t save_every = 0;  // steps; 0: only at the end (and when interrupted)
  int keep_checkpoints = 2;
  // monitors and profiler
  bool csv_monitor = false;
  std::string csv_output_path, csv_job_name = "DeepSpeedJobName";
  bool flops_profiler = false;
  std::int64_t flops_profile_step = 1;
  std::string flops_output_file;

  // The DeepSpeed keys of the file that have no effect here, grouped by reason:
  // "contiguous_gradients (gradient buckets are always contiguous)"; printed once at start-up.
  std::vector<std::string> no_effect;
  // The keys written as "auto" with what they resolved to: "train_batch_size = 128".
  std::vector<std::string> auto_resolved;

  // Everything, as a JSON object in the config file's own layout (printed at
  // start-up, stored in checkpoints).
  nlohmann::ordered_json to_json() const;
  // The settings that decide the numbers a run computes (model, data, batch,
  // optimizer, schedule, seed): a checkpoint resumes only under the same ones.
  nlohmann::ordered_json identity_json() const;
  ViTConfig vit_config(int channels, int num_classes) const;
  // ZeRO-2/3 without the model's full gradient buffer: when every micro-step
  // reduces (one micro-step, or reduce_every_micro_step). See parallel/grad_window.h.
  bool zero_gradient_window() const {
    return zero_stage >= 2 && (gradient_accumulation_steps == 1 || reduce_every_micro_step);
  }
};

// The model presets (--model) are runtime/vit_config.h's vit_presets().

// The JSON file's settings. Unknown keys, wrong types and malformed sections are
// recorded in problems, one line naming each key ("config.json: unknown key
// 'zero_optimization.stag'"), and thrown together by resolve(), with every
// other problem of the run. Only a file that is no JSON object throws here.
TrainOptions parse_config_json(const nlohmann::json& j, const std::string& what);
TrainOptions load_config_file(const std::string& path);

// The command line. Returns nullopt when the run should end right here with
// `exit_code` (after --help: 0, or a parse error: 2, already printed).
struct CommandLine {
  TrainOptions options;
  std::string config_path;
  bool print_config = false;
};
std::optional<CommandLine> parse_command_line(int argc, const char* const* argv, int& exit_code);
// The text of --help (every flag, with its JSON key).
std::string help_text();

// Defaults ← file ← flags; preset; batch arithmetic; validation. A preset whose
// image size is 0 leaves image_size 0: the trainer sets it to the dataset's side.
// Throws one ConfigError listing every problem, one line each.
TrainConfig resolve(const TrainOptions& file, const TrainOptions& flags, int world_size = 1);

// csv_monitor's file: output_path/job_name/metrics.csv, else beside
// logging.metrics_out (its extension replaced by .csv); "" when csv_monitor is off.
std::string csv_monitor_path(const TrainConfig& config);

// The start-up notes of a resolved config: one line naming every DeepSpeed key
// that has no effect here, with the reasons, and one with the "auto" values
// as resolved (none when there are none).
std::vector<std::string> config_notes(const TrainConfig& config);

// Compares a checkpoint's stored config (to_json()) with this run's
// identity_json(); throws ConfigError naming the first key that differs. The
// split of the global batch (micro batch, accumulation, hence world size) may
// differ; train_batch_size may not.
void check_same_run(const nlohmann::json& checkpoint_config, const nlohmann::json& run_identity,
                    const std::string& checkpoint_path);

}  // namespace vitscale::train
