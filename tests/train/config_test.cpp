// config_test.cpp — the JSON config and the flags: DeepSpeed's batch arithmetic,
// precedence, and every kind of bad input refused with a line that names it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "train/config_table.h"
#include "train/train_config.h"
#include "train_util.h"

using namespace vitscale::train;
using namespace vitscale::train::testing;
using nlohmann::json;

namespace {

TrainConfig from_json(const json& j, int world = 1) { return resolve_config(j, world, "cfg.json"); }

// The message a config is refused with ("" when it was accepted).
std::string refusal(const json& j, int world = 1) { return config_refusal(j, world, "cfg.json"); }

std::optional<CommandLine> parse_flags(std::vector<std::string> args, int& code) {
  args.insert(args.begin(), "vit_train");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), code);
}

}  // namespace

TEST_CASE("defaults are the CPU main job: vit-cpu on Fashion-MNIST, batch 128", "[config]") {
  const TrainConfig c = resolve({}, {});
  CHECK(c.dataset == "fashion-mnist");
  CHECK(c.model == "vit-cpu");
  CHECK(c.device == "auto");
  CHECK(c.train_batch_size == 128);
  CHECK(c.micro_batch_size == 128);
  CHECK(c.gradient_accumulation_steps == 1);
  CHECK(c.image_size == 28);
  CHECK(c.patch_size == 7);
  CHECK(c.dim == 96);
  CHECK(c.epochs == 32);
}

TEST_CASE("DeepSpeed batch arithmetic: any two of the three batch keys fix the third", "[config]") {
  SECTION("train_batch_size and micro batch give the accumulation") {
    const TrainConfig c = from_json({{"train_batch_size", 256}, {"train_micro_batch_size_per_gpu", 32}}, 2);
    CHECK(c.gradient_accumulation_steps == 4);
  }
  SECTION("train_batch_size and accumulation give the micro batch") {
    const TrainConfig c = from_json({{"train_batch_size", 256}, {"gradient_accumulation_steps", 2}}, 4);
    CHECK(c.micro_batch_size == 32);
  }
  SECTION("micro batch and accumulation give train_batch_size") {
    const TrainConfig c = from_json({{"train_micro_batch_size_per_gpu", 16}, {"gradient_accumulation_steps", 3}}, 2);
    CHECK(c.train_batch_size == 96);
  }
  SECTION("all three agreeing are accepted") {
    const TrainConfig c = from_json(
        {{"train_batch_size", 64}, {"train_micro_batch_size_per_gpu", 16}, {"gradient_accumulation_steps", 2}}, 2);
    CHECK(c.train_batch_size == 64);
  }
  SECTION("train_batch_size alone: no accumulation, split over the ranks") {
    const TrainConfig c = from_json({{"train_batch_size", 512}}, 8);
    CHECK(c.micro_batch_size == 64);
    CHECK(c.gradient_accumulation_steps == 1);
  }
  SECTION("a contradiction is an error naming the three numbers") {
    const std::string e =
        refusal({{"train_batch_size", 100}, {"train_micro_batch_size_per_gpu", 16}, {"gradient_accumulation_steps", 2}});
    CHECK_THAT(e, Catch::Contains("contradict") && Catch::Contains("100") && Catch::Contains("16") &&
                      Catch::Contains("world size 1"));
  }
  SECTION("an indivisible train_batch_size is refused") {
    CHECK_THAT(refusal({{"train_batch_size", 100}, {"train_micro_batch_size_per_gpu", 32}}),
               Catch::Contains("not a multiple"));
    CHECK_THAT(refusal({{"train_batch_size", 100}}, 3), Catch::Contains("not a multiple of world size 3"));
  }
  SECTION("gradient_accumulation_steps alone is not enough") {
    CHECK_THAT(refusal({{"gradient_accumulation_steps", 4}}), Catch::Contains("alone does not fix the batch"));
  }
  SECTION("zero or negative batch sizes are refused") {
    CHECK_THAT(refusal({{"train_batch_size", 0}}), Catch::Contains("train_batch_size (--train-batch-size) must be at least 1"));
  }
}

TEST_CASE("DeepSpeed sections are read: optimizer, scheduler, bf16, zero_optimization", "[config]") {
  const json j = json::parse(R"({
    "train_batch_size": 64,
    "gradient_clipping": 0.5,
    "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupCosineLR", "params": {"warmup_num_steps": 10, "total_num_steps": 500,
                  "warmup_min_ratio": 0.1, "cos_min_ratio": 0.05, "warmup_type": "log"}},
    "bf16": {"enabled": false},
    "zero_optimization": {"stage": 1, "reduce_bucket_size": 5e8, "overlap_comm": false},
    "wall_clock_breakdown": true,
    "steps_per_print": 7
  })");
  const TrainConfig c = from_json(j);
  CHECK(c.lr == Approx(3e-4));
  CHECK(c.beta1 == Approx(0.8));
  CHECK(c.beta2 == Approx(0.95));
  CHECK(c.eps == Approx(1e-6));
  CHECK(c.weight_decay == Approx(0.1));
  CHECK(c.gradient_clipping == Approx(0.5));
  CHECK(c.warmup_steps == 10);
  CHECK(c.total_num_steps == 500);
  CHECK(c.warmup_type == "log");
  CHECK(c.zero_stage == 1);
  CHECK(c.reduce_bucket_size == 500000000);  // 5e8 written as a float, as DeepSpeed configs do
  CHECK_FALSE(c.overlap_comm);
  CHECK(c.wall_clock_breakdown);
  CHECK(c.steps_per_print == 7);
}

TEST_CASE("unknown keys are named, with a suggestion when one is close", "[config]") {
  CHECK_THAT(refusal({{"zero_optimization", {{"stag", 1}}}}),
             Catch::Contains("unknown key 'zero_optimization.stag'") &&
                 Catch::Contains("did you mean 'zero_optimization.stage'"));
  // fp16 is DeepSpeed's key: refused with the reason (deepspeed_config_test.cpp), not as unknown.
  CHECK_THAT(refusal({{"fp16", {{"enabled", true}}}}),
             Catch::Contains("fp16 training is not supported; use bf16.enabled") && !Catch::Contains("unknown key"));
  CHECK_THAT(refusal({{"fp17", {{"enabled", true}}}}), Catch::Contains("unknown key 'fp17'"));
  CHECK_THAT(refusal({{"model", {{"preset", "vit-tiny"}, {"layers", 3}}}}), Catch::Contains("'model.layers'"));
}

TEST_CASE("wrong JSON types are refused naming the key", "[config]") {
  CHECK_THAT(refusal({{"train_batch_size", "128"}}), Catch::Contains("'train_batch_size' must be an integer"));
  CHECK_THAT(refusal({{"train_batch_size", 12.5}}), Catch::Contains("must be an integer"));
  // ("auto" is Hugging Face's word for "resolve it": accepted, see deepspeed_config_test.cpp.)
  CHECK_THAT(refusal({{"bf16", {{"enabled", "yes"}}}}), Catch::Contains("'bf16.enabled' must be true or false"));
  CHECK_THAT(refusal({{"optimizer", "AdamW"}}), Catch::Contains("'optimizer' must be an object"));
  CHECK_THAT(refusal({{"optimizer", {{"params", {{"betas", {0.9}}}}}}}), Catch::Contains("array of two numbers"));
  CHECK_THROWS_WITH(parse_config_json(json::array({1, 2}), "cfg.json"), Catch::Contains("must be a JSON object"));
  CHECK_THROWS_WITH(load_config_file("/nonexistent/ds.json"), Catch::Contains("/nonexistent/ds.json: cannot open"));
}

TEST_CASE("impossible values are refused with the key, the flag and the reason", "[config]") {
  CHECK_THAT(refusal({{"optimizer", {{"params", {{"lr", -1}}}}}}),
             Catch::Contains("optimizer.params.lr (--lr) must be positive, got -1"));
  CHECK_THAT(refusal({{"optimizer", {{"params", {{"betas", {0.9, 1.0}}}}}}}),
             Catch::Contains("optimizer.params.betas[1] (--beta2) must be in [0, 1)"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 4}}}}),
             Catch::Contains("zero_optimization.stage (--zero-stage) must be in [0, 3], got 4"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", -1}}}}),
             Catch::Contains("zero_optimization.stage (--zero-stage) must be in [0, 3], got -1"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 3}}}, {"runtime", {{"cuda_graphs", true}, {"device", "cuda"}}}}),
             Catch::Contains("runtime.cuda_graphs (--cuda-graphs) does not work at zero_optimization.stage 3"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 2}}}, {"runtime", {{"cuda_graphs", true}, {"device", "cuda"}}}}),
             Catch::Contains("runtime.cuda_graphs (--cuda-graphs) does not work at zero_optimization.stage 2"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 3}}}, {"bf16", {{"enabled", true}}}, {"runtime", {{"device", "cuda"}}}}),
             Catch::Contains("bf16.enabled (--bf16) is not implemented at zero_optimization.stage 3"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 1}, {"reduce_every_micro_step", true}}}}),
             Catch::Contains("zero_optimization.reduce_every_micro_step (--reduce-every-micro-step) needs "
                             "zero_optimization.stage 2 or 3"));
  CHECK_THAT(refusal({{"zero_optimization", {{"stage", 3}, {"stage3_max_live_parameters", 0}}}}),
             Catch::Contains("zero_optimization.stage3_max_live_parameters (--stage3-max-live-parameters) must be at "
                             "least 1, got 0"));
  CHECK_THAT(refusal({{"bf16", {{"enabled", true}}}, {"runtime", {{"device", "cpu"}}}}),
             Catch::Contains("bf16.enabled (--bf16) needs the CUDA backend"));
  CHECK_THAT(refusal({{"model", {{"dim", 100}, {"heads", 3}}}}),
             Catch::Contains("model.dim (--dim) 100 is not divisible by model.heads (--heads) 3"));
  CHECK_THAT(refusal({{"model", {{"image_size", 30}, {"patch_size", 7}}}}), Catch::Contains("not divisible"));
  CHECK_THAT(refusal({{"model", {{"preset", "vit-huge"}}}}),
             Catch::Contains("model.preset (--model) must be one of vit-cpu, vit-tiny"));
  CHECK_THAT(refusal({{"data", {{"dataset", "mnist"}}}}), Catch::Contains("data.dataset (--dataset) must be one of"));
  CHECK_THAT(refusal({{"training", {{"label_smoothing", 1.0}}}}), Catch::Contains("label_smoothing"));
  CHECK_THAT(refusal({{"runtime", {{"device", "tpu"}}}}),
             Catch::Contains("runtime.device (--device) must be one of cpu, cuda, auto, got 'tpu'"));
  CHECK_THAT(refusal({{"steps_per_print", 0}}), Catch::Contains("steps_per_print (--steps-per-print) must be at least 1"));
  CHECK_THAT(refusal({{"training", {{"epochs", 0}}}}), Catch::Contains("training.epochs (--epochs)"));
  CHECK_THAT(refusal({{"checkpoint", {{"save_every", 10}}}}), Catch::Contains("needs checkpoint.save_dir (--save-dir)"));
  CHECK_THAT(refusal({{"scheduler", {{"type", "LRRangeTest"}}}}), Catch::Contains("scheduler.type (--scheduler)"));
  CHECK_THAT(refusal({{"scheduler", {{"params", {{"warmup_type", "exp"}}}}}}), Catch::Contains("linear, log"));
  CHECK_THAT(refusal({{"runtime", {{"device", "cpu"}, {"cuda_graphs", true}}}}),
             Catch::Contains("runtime.cuda_graphs (--cuda-graphs) needs the CUDA backend"));
  CHECK_THAT(refusal({{"runtime", {{"device", "cuda"}, {"cuda_graphs", true}}}, {"train_batch_size", 64}}, 2),
             Catch::Contains("runtime.cuda_graphs (--cuda-graphs) works at world size 1 only (this run has 2 ranks)"));
}

TEST_CASE("cuda_graphs is read from the flag and the runtime section, off by default", "[config]") {
  CHECK_FALSE(from_json(json::object()).cuda_graphs);
  CHECK(from_json({{"runtime", {{"device", "cuda"}, {"cuda_graphs", true}}}}).cuda_graphs);
  CHECK(from_json({{"runtime", {{"device", "auto"}, {"cuda_graphs", true}}}}).to_json()["runtime"]["cuda_graphs"] == true);
  int code = -1;
  const auto cl = parse_flags({"--cuda-graphs", "--device", "cuda"}, code);
  REQUIRE(cl);
  CHECK(resolve({}, cl->options).cuda_graphs);
}

TEST_CASE("presets have the paper's shapes", "[config]") {
  const TrainConfig b16 = from_json({{"model", {{"preset", "vit-b16-224"}}}});
  CHECK(b16.image_size == 224);
  CHECK(b16.patch_size == 16);
  CHECK(b16.dim == 768);
  CHECK(b16.depth == 12);
  CHECK(b16.heads == 12);
  CHECK(b16.mlp_dim == 3072);
  CHECK(b16.vit_config(3, 10).tokens() == 197);
  const TrainConfig tiny = from_json({{"model", {{"preset", "vit-tiny"}}}});
  CHECK(tiny.image_size == 0);  // the dataset's side: 32 for CIFAR
  CHECK(tiny.dim == 192);
  CHECK(tiny.heads == 3);
  const TrainConfig small = from_json({{"model", {{"preset", "vit-small"}, {"depth", 6}}}});
  CHECK(small.dim == 384);
  CHECK(small.depth == 6);  // an explicit key overrides the preset
}

TEST_CASE("flags override the config file", "[config]") {
  int code = -1;
  const auto cl = parse_flags({"--lr", "0.005", "--train-batch-size", "64", "--no-hflip", "--zero-stage", "1"}, code);
  REQUIRE(cl);
  const TrainOptions file = parse_config_json(
      {{"optimizer", {{"params", {{"lr", 1e-4}, {"weight_decay", 0.2}}}}}, {"data", {{"hflip", true}}}}, "cfg.json");
  const TrainConfig c = resolve(file, cl->options);
  CHECK(c.lr == Approx(0.005));        // flag wins
  CHECK(c.weight_decay == Approx(0.2));  // file kept where no flag was given
  CHECK_FALSE(c.hflip);
  CHECK(c.train_batch_size == 64);
  CHECK(c.zero_stage == 1);
}

TEST_CASE("bad flags end the parse with exit code 2", "[config]") {
  int code = -1;
  CHECK_FALSE(parse_flags({"--no-such-flag"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(parse_flags({"--lr", "fast"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(parse_flags({"--help"}, code));
  CHECK(code == 0);
}

TEST_CASE("the --help text documents every setting with its JSON key", "[config]") {
  const std::string help = help_text();
  for (const Setting& s : settings()) {
    INFO(s.flag);
    CHECK_THAT(help, Catch::Contains(std::string(s.flag) + " ") || Catch::Contains(std::string(s.flag) + ","));
    CHECK_THAT(help, Catch::Contains(std::string("[") + s.json_key + "]"));
  }
}

TEST_CASE("every JSON key of the table round-trips through to_json's layout", "[config]") {
  // A config written by --print-config must be readable as a config file.
  TrainConfig c = resolve({}, {});
  json j = json::parse(c.to_json().dump());
  const TrainConfig again = resolve(parse_config_json(j, "printed.json"), {});
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("a checkpoint's config mismatch names the key", "[config]") {
  const TrainConfig a = resolve({}, {});
  TrainConfig b = a;
  b.dim = 128;
  CHECK_NOTHROW(check_same_run(json::parse(a.to_json().dump()), a.identity_json(), "ckpt.safetensors"));
  CHECK_THROWS_WITH(check_same_run(json::parse(a.to_json().dump()), b.identity_json(), "ckpt.safetensors"),
                    Catch::Contains("ckpt.safetensors: config mismatch: model.dim is 96 in the checkpoint but 128"));
  TrainConfig c = a;
  c.threads = 7;  // not part of the run's identity
  CHECK_NOTHROW(check_same_run(json::parse(a.to_json().dump()), c.identity_json(), "ckpt.safetensors"));
}
