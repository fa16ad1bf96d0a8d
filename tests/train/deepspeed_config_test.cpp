// deepspeed_config_test.cpp — DeepSpeed users' config files as they are: the
// shapes of DeepSpeed's documentation and examples and of Hugging Face's
// templates each resolve, or fail, exactly as docs/training.md's table says.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "train/train_config.h"
#include "train_util.h"

using namespace vitscale::train;
using namespace vitscale::train::testing;
using nlohmann::json;

namespace {

TrainConfig from_json(const json& j, int world = 1) { return resolve_config(j, world, "ds.json"); }

// The message a config is refused with ("" when it was accepted).
std::string refusal(const json& j, int world = 1) { return config_refusal(j, world, "ds.json"); }

std::size_t lines_of(const std::string& s) { return s.empty() ? 0 : 1 + std::count(s.begin(), s.end(), '\n'); }

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The one start-up line that names the keys with no effect ("" when none).
std::string no_effect_line(const TrainConfig& c) {
  for (const std::string& note : config_notes(c))
    if (note.rfind("DeepSpeed keys accepted with no effect here:", 0) == 0) return note;
  return "";
}

// DeepSpeed's CIFAR-10 example (DeepSpeedExamples training/cifar), in its docs' shape.
json cifar10_example() {
  return json::parse(R"({
    "train_batch_size": 4,
    "steps_per_print": 2000,
    "optimizer": {"type": "Adam", "params": {"lr": 0.001, "betas": [0.8, 0.999], "eps": 1e-8, "weight_decay": 3e-7}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": 0.001, "warmup_num_steps": 1000}},
    "wall_clock_breakdown": false
  })");
}

// A typical ZeRO-1 config.
json zero1_config() {
  return json::parse(R"({
    "train_batch_size": 256,
    "train_micro_batch_size_per_gpu": 32,
    "gradient_accumulation_steps": 2,
    "gradient_clipping": 1.0,
    "fp16": {"enabled": false},
    "bf16": {"enabled": false},
    "zero_optimization": {"stage": 1, "allgather_partitions": true, "allgather_bucket_size": 2e8,
                          "overlap_comm": true, "reduce_scatter": true, "reduce_bucket_size": 5e8,
                          "contiguous_gradients": true},
    "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 5000, "warmup_num_steps": 100}}
  })");
}

}  // namespace

TEST_CASE("DeepSpeed's CIFAR-10 example config resolves as it is", "[config][deepspeed]") {
  const TrainConfig c = from_json(cifar10_example());
  CHECK(c.train_batch_size == 4);
  CHECK(c.micro_batch_size == 4);
  CHECK(c.gradient_accumulation_steps == 1);
  CHECK(c.optimizer_type == "Adam");
  CHECK(c.beta1 == Approx(0.8));
  CHECK(c.beta2 == Approx(0.999));
  CHECK(c.eps == Approx(1e-8));
  CHECK(c.weight_decay == Approx(3e-7));
  CHECK(c.scheduler_type == "WarmupLR");
  CHECK(c.warmup_min_lr == 0.0);
  CHECK(c.warmup_max_lr == Approx(0.001));
  CHECK(c.warmup_steps == 1000);
  CHECK(c.warmup_type == "log");  // DeepSpeed's default for WarmupLR
  CHECK(c.steps_per_print == 2000);
  CHECK_FALSE(c.wall_clock_breakdown);
  CHECK(no_effect_line(c).empty());  // every key of it is honoured
  // --print-config's output reads back to the same run.
  const TrainConfig again = resolve(parse_config_json(json::parse(c.to_json().dump()), "printed.json"), {});
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("the CIFAR-10 example's full ds_config (bf16, fp16 off, ZeRO 0 keys) resolves, no-effect keys named once",
          "[config][deepspeed]") {
  json j = cifar10_example();
  j["gradient_clipping"] = 1.0;
  j["prescale_gradients"] = false;
  j["bf16"] = {{"enabled", true},          {"bf16_master_weights_and_grads", false},
               {"loss_scale", 0},          {"loss_scale_window", 500},
               {"hysteresis", 2},          {"min_loss_scale", 1},
               {"initial_scale_power", 15}};
  j["fp16"] = {{"enabled", false},         {"fp16_master_weights_and_grads", false},
               {"loss_scale", 0},          {"loss_scale_window", 500},
               {"hysteresis", 2},          {"min_loss_scale", 1},
               {"initial_scale_power", 15}};
  j["zero_optimization"] = {{"stage", 0},
                            {"allgather_partitions", true},
                            {"reduce_scatter", true},
                            {"allgather_bucket_size", 50000000},
                            {"reduce_bucket_size", 50000000},
                            {"overlap_comm", true},
                            {"contiguous_gradients", true},
                            {"cpu_offload", false}};
  const TrainConfig c = from_json(j);
  CHECK(c.bf16);
  CHECK(c.reduce_bucket_size == 50000000);
  CHECK(c.allgather_bucket_size == 50000000);
  const std::string line = no_effect_line(c);
  INFO(line);
  for (const char* key : {"prescale_gradients", "bf16.bf16_master_weights_and_grads", "bf16.loss_scale ",
                          "bf16.hysteresis", "fp16.enabled = false", "fp16.fp16_master_weights_and_grads",
                          "fp16.initial_scale_power", "zero_optimization.allgather_partitions",
                          "zero_optimization.reduce_scatter", "zero_optimization.contiguous_gradients",
                          "zero_optimization.cpu_offload", "zero_optimization.allgather_bucket_size"})
    CHECK(occurrences(line, key) == 1);
  CHECK_THAT(line, Catch::Contains("no parameter all-gather at zero_optimization.stage 0"));
  CHECK_THAT(line, Catch::Contains("gradient buckets are always contiguous"));
  CHECK(occurrences(line, "zero_optimization.overlap_comm") == 0);  // honoured: not in the line
  CHECK(config_notes(c).size() == 1);
}

TEST_CASE("a typical ZeRO-1 config resolves, its no-effect keys are named in one line", "[config][deepspeed]") {
  const TrainConfig c = from_json(zero1_config(), 4);
  CHECK(c.zero_stage == 1);
  CHECK(c.train_batch_size == 256);
  CHECK(c.micro_batch_size == 32);
  CHECK(c.gradient_accumulation_steps == 2);
  CHECK(c.allgather_bucket_size == 200000000);  // honoured: ZeRO-1's all-gather pieces
  CHECK(c.reduce_bucket_size == 500000000);
  CHECK(c.overlap_comm);
  CHECK(c.gradient_clipping == Approx(1.0));
  CHECK_FALSE(c.bf16);
  CHECK(c.scheduler_type == "WarmupCosineLR");
  CHECK(c.total_num_steps == 5000);
  const std::string line = no_effect_line(c);
  INFO(line);
  CHECK(occurrences(line, "fp16.enabled = false") == 1);
  CHECK(occurrences(line, "zero_optimization.allgather_partitions = true") == 1);
  CHECK(occurrences(line, "zero_optimization.reduce_scatter = true") == 1);
  CHECK(occurrences(line, "zero_optimization.contiguous_gradients = true") == 1);
  CHECK(occurrences(line, "allgather_bucket_size") == 0);  // it has an effect at stage 1
  CHECK(c.to_json()["zero_optimization"]["allgather_bucket_size"] == 200000000);
}

TEST_CASE("Hugging Face's \"auto\" values resolve from the other keys and show in --print-config",
          "[config][deepspeed]") {
  const json j = json::parse(R"({
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": 16,
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "fp16": {"enabled": "auto", "loss_scale": 0, "initial_scale_power": 16},
    "bf16": {"enabled": "auto"},
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                  "warmup_num_steps": "auto", "total_num_steps": "auto"}},
    "zero_optimization": {"stage": 1, "reduce_bucket_size": "auto", "overlap_comm": true,
                          "offload_optimizer": {"device": "none"}}
  })");
  const TrainConfig c = from_json(j, 2);
  const TrainConfig defaults = resolve({}, {});
  CHECK(c.micro_batch_size == 16);
  CHECK(c.gradient_accumulation_steps == 1);
  CHECK(c.train_batch_size == 32);  // 16 x 1 x world size 2
  CHECK(c.gradient_clipping == defaults.gradient_clipping);
  CHECK_FALSE(c.bf16);
  CHECK(c.lr == defaults.lr);
  CHECK(c.beta1 == defaults.beta1);
  CHECK(c.weight_decay == defaults.weight_decay);
  CHECK(c.warmup_min_lr == 0.0);
  CHECK(c.warmup_max_lr == c.lr);
  CHECK(c.warmup_steps == -1);                                              // from training.warmup_epochs
  CHECK(c.total_num_steps == 0);                                            // the run's length
  CHECK(c.reduce_bucket_size == static_cast<std::int64_t>(c.dim) * c.dim);  // Hugging Face: hidden_size²
  const json printed = json::parse(c.to_json().dump());
  CHECK(printed["train_batch_size"] == 32);
  CHECK(printed["zero_optimization"]["reduce_bucket_size"] == c.dim * c.dim);
  CHECK(printed["scheduler"]["params"]["warmup_max_lr"] == c.lr);
  const std::vector<std::string> notes = config_notes(c);
  REQUIRE(notes.size() == 2);
  CHECK_THAT(notes[1], Catch::Contains("train_batch_size = 32") &&
                           Catch::Contains("zero_optimization.reduce_bucket_size = " + std::to_string(c.dim * c.dim)) &&
                           Catch::Contains("bf16.enabled = false"));
  CHECK_THAT(notes[0], Catch::Contains("fp16.enabled = \"auto\"") &&
                           Catch::Contains("zero_optimization.offload_optimizer (device none: nothing is offloaded)"));
  // "auto" is DeepSpeed's word: vitscale's own sections still want a value.
  CHECK_THAT(refusal({{"training", {{"epochs", "auto"}}}}), Catch::Contains("'training.epochs' must be an integer"));
}

TEST_CASE("fp16 on is refused with the reason, not as an unknown key", "[config][deepspeed]") {
  json j = zero1_config();
  j["fp16"] = {{"enabled", true}, {"loss_scale", 0}, {"initial_scale_power", 16}};
  const std::string e = refusal(j, 4);
  CHECK(e == "ds.json: fp16.enabled = true: fp16 training is not supported; use bf16.enabled");
  CHECK_THAT(refusal({{"amp", {{"enabled", true}, {"opt_level", "O1"}}}}),
             Catch::Contains("amp: Apex AMP is not supported; use bf16.enabled"));
  CHECK(refusal({{"amp", {{"enabled", false}, {"opt_level", "O1"}}}}).empty());
}

TEST_CASE("offload and the ZeRO-3 keys not built are refused with every problem in one message", "[config][deepspeed]") {
  SECTION("Hugging Face's ZeRO-2 template with CPU offload") {
    const std::string e = refusal(json::parse(R"({
      "bf16": {"enabled": "auto"},
      "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": true},
                            "allgather_partitions": true, "allgather_bucket_size": 2e8, "overlap_comm": true,
                            "reduce_scatter": true, "reduce_bucket_size": 2e8, "contiguous_gradients": true},
      "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto"
    })"));
    INFO(e);
    CHECK(lines_of(e) == 1);  // stage 2 itself runs
    CHECK_THAT(e, Catch::Contains("ds.json: zero_optimization.offload_optimizer: offloading the optimizer to CPU or "
                                  "NVMe is not implemented"));
  }
  SECTION("a ZeRO-3 config: the offloads and the stage-3 keys that are not built, by name") {
    const std::string e = refusal(json::parse(R"({
      "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "nvme"},
                            "overlap_comm": true, "contiguous_gradients": true, "sub_group_size": 1e9,
                            "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                            "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1e9,
                            "stage3_max_reuse_distance": 1e9, "stage3_gather_16bit_weights_on_model_save": true}
    })"));
    INFO(e);
    CHECK(lines_of(e) == 4);
    for (const char* key :
         {"offload_optimizer", "offload_param", "stage3_max_reuse_distance", "stage3_gather_16bit_weights_on_model_save"})
      CHECK(occurrences(e, std::string("zero_optimization.") + key) == 1);
    CHECK(occurrences(e, "a ZeRO stage 3 key that is not implemented here") == 2);
    // Stage 3's own keys are settings: no refusal names them.
    for (const char* key : {"sub_group_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold",
                            "stage3_max_live_parameters"})
      CHECK(occurrences(e, std::string("zero_optimization.") + key) == 0);
    CHECK_THAT(e, !Catch::Contains("unknown key"));
  }
  SECTION("stage 3's keys take effect; Hugging Face's \"auto\" sizes them from the width") {
    const TrainConfig c = from_json(json::parse(R"({
      "model": {"dim": 64, "heads": 2},
      "zero_optimization": {"stage": 3, "stage3_prefetch_bucket_size": "auto",
                            "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 3e6}
    })"));
    CHECK(c.zero_stage == 3);
    CHECK(c.stage3_prefetch_bucket_size == static_cast<std::int64_t>(0.9 * 64 * 64));
    CHECK(c.stage3_param_persistence_threshold == 640);
    CHECK(c.stage3_max_live_parameters == 3'000'000);
    CHECK(c.zero_gradient_window());
  }
  SECTION("cpu_offload true (the deprecated key) is refused; false has no effect") {
    CHECK_THAT(refusal({{"zero_optimization", {{"stage", 1}, {"cpu_offload", true}}}}),
               Catch::Contains("zero_optimization.cpu_offload = true: offloading the optimizer to CPU"));
    CHECK(refusal({{"zero_optimization", {{"stage", 1}, {"cpu_offload", false}}}}).empty());
  }
}

TEST_CASE("reduce_scatter false is refused at stage 1 only", "[config][deepspeed]") {
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 1}, {"reduce_scatter", false}}}}),
             Catch::Contains("reduce_scatter false is not implemented at zero_optimization.stage >= 1"));
  const TrainConfig c = from_json({{"zero_optimization", {{"stage", 0}, {"reduce_scatter", false}}}});
  CHECK_THAT(no_effect_line(c), Catch::Contains("zero_optimization.reduce_scatter = false"));
  // The stage from a flag counts: the judgement uses the resolved config.
  int code = 0;
  std::vector<const char*> argv = {"vit_train", "--zero-stage", "1"};
  const auto cl = parse_command_line(static_cast<int>(argv.size()), argv.data(), code);
  REQUIRE(cl);
  const TrainOptions file = parse_config_json({{"zero_optimization", {{"reduce_scatter", false}}}}, "ds.json");
  CHECK_THROWS_WITH(resolve(file, cl->options), Catch::Contains("reduce_scatter false is not implemented"));
}

TEST_CASE("anything else is still an unknown key, with a suggestion, every problem of a file at once",
          "[config][deepspeed]") {
  CHECK_THAT(refusal({{"zero_optimization", {{"contiguous_gradient", true}}}}),
             Catch::Contains("unknown key 'zero_optimization.contiguous_gradient'") &&
                 Catch::Contains("did you mean 'zero_optimization.contiguous_gradients'"));
  CHECK_THAT(refusal({{"fp16", {{"enabeld", true}}}}), Catch::Contains("did you mean 'fp16.enabled'"));
  const std::string e = refusal(json::parse(R"({
    "train_batch_szie": 64,
    "steps_per_print": "often",
    "gradient_clipping": -1,
    "fp16": {"enabled": true},
    "scheduler": {"type": "WarmupLR", "params": {"cos_min_ratio": 0.1}}
  })"));
  INFO(e);
  CHECK(lines_of(e) == 5);
  CHECK_THAT(e, Catch::Contains("unknown key 'train_batch_szie' (did you mean 'train_batch_size'?)"));
  CHECK_THAT(e, Catch::Contains("key 'steps_per_print' must be an integer"));
  CHECK_THAT(e, Catch::Contains("fp16 training is not supported"));
  CHECK_THAT(e, Catch::Contains("gradient_clipping (--gradient-clipping) must not be negative, got -1"));
  CHECK_THAT(e, Catch::Contains("scheduler.params.cos_min_ratio (--cos-min-ratio) does not apply to scheduler.type "
                                "WarmupLR"));
}

TEST_CASE("scheduler params belong to their type, OneCycle needs cycle_min_lr", "[config][deepspeed]") {
  CHECK_THAT(refusal({{"scheduler", {{"type", "OneCycle"}, {"params", {{"cycle_max_lr", 0.01}}}}}}),
             Catch::Contains("scheduler.params.cycle_min_lr (--cycle-min-lr) is required by scheduler.type OneCycle"));
  CHECK_THAT(refusal({{"scheduler", {{"type", "WarmupCosineLR"}, {"params", {{"warmup_max_lr", 0.01}}}}}}),
             Catch::Contains("scheduler.params.warmup_max_lr (--warmup-max-lr) does not apply"));
  CHECK_THAT(refusal({{"scheduler", {{"type", "LRRangeTest"}, {"params", {{"lr_range_test_min_lr", 1e-4}}}}}}),
             Catch::Contains("LRRangeTest is not implemented") &&
                 Catch::Contains("scheduler.type (--scheduler) must be one of WarmupCosineLR, WarmupLR, "
                                 "WarmupDecayLR, OneCycle, got 'LRRangeTest'"));
  const TrainConfig one = from_json(json::parse(R"({
    "optimizer": {"type": "AdamW", "params": {"lr": 0.05, "betas": [0.9, 0.999]}},
    "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-2,
                  "cycle_first_step_size": 300, "decay_step_size": 100, "decay_lr_rate": 0.1}}
  })"));
  CHECK(one.cycle_second_step_size == 300);  // unset: the first's
  CHECK(one.cycle_momentum);                 // DeepSpeed's default
  const std::string line = no_effect_line(one);
  CHECK_THAT(line, Catch::Contains("optimizer.params.lr = 0.05 (scheduler.params.cycle_max_lr sets the rate"));
  CHECK_THAT(line, Catch::Contains("optimizer.params.betas (OneCycle's cycle_momentum sets beta1"));
  const json printed = json::parse(one.to_json().dump());
  CHECK(printed["scheduler"]["params"]["cycle_max_lr"] == 1e-2);
  CHECK_FALSE(printed["scheduler"]["params"].contains("cos_min_ratio"));
  const TrainConfig again = resolve(parse_config_json(printed, "printed.json"), {});
  CHECK(again.to_json() == one.to_json());
}

TEST_CASE("monitors and the profiler: csv_monitor and flops_profiler are honoured, services are not",
          "[config][deepspeed]") {
  const TrainConfig c = from_json(json::parse(R"({
    "csv_monitor": {"enabled": true, "output_path": "output/ds_logs/", "job_name": "train_vit"},
    "flops_profiler": {"enabled": true, "profile_step": 5, "module_depth": -1, "top_modules": 1, "detailed": true,
                       "output_file": null},
    "tensorboard": {"enabled": true, "output_path": "output/ds_logs/", "job_name": "train_vit"},
    "wandb": {"enabled": true, "project": "vit"},
    "comet": {"enabled": true},
    "activation_checkpointing": {"partition_activations": false, "cpu_checkpointing": false},
    "steps_per_print": 10, "wall_clock_breakdown": true, "dump_state": false
  })"));
  CHECK(c.csv_monitor);
  CHECK(csv_monitor_path(c) == "output/ds_logs/train_vit/metrics.csv");
  CHECK(c.flops_profiler);
  CHECK(c.flops_profile_step == 5);
  CHECK(c.wall_clock_breakdown);
  const std::string line = no_effect_line(c);
  INFO(line);
  for (const char* key :
       {"tensorboard (needs TensorBoard", "wandb (needs the Weights & Biases service", "comet (needs the Comet service",
        "flops_profiler.module_depth = -1", "flops_profiler.top_modules = 1", "flops_profiler.detailed = true",
        "activation_checkpointing.partition_activations = false", "activation_checkpointing.cpu_checkpointing = false",
        "dump_state = false"})
    CHECK(occurrences(line, key) == 1);
  CHECK_FALSE(c.activation_checkpointing);
}

TEST_CASE("activation_checkpointing.enabled (--activation-checkpointing) turns recompute on beside DeepSpeed's keys",
          "[config][deepspeed]") {
  const TrainConfig on = from_json(json::parse(R"({
    "activation_checkpointing": {"enabled": true, "partition_activations": false, "number_checkpoints": 4}
  })"));
  CHECK(on.activation_checkpointing);
  CHECK(on.to_json()["activation_checkpointing"]["enabled"] == true);
  CHECK(occurrences(no_effect_line(on), "activation_checkpointing.number_checkpoints = 4") == 1);
  CHECK_FALSE(from_json(json::parse(R"({"train_batch_size": 64})")).activation_checkpointing);
}
