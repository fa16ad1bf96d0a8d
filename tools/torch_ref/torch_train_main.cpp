// torch_train_main.cpp — vit_torch_train: vit_train's recipe trained by
// LibTorch instead of vitscale's kernels, the baseline of the time-to-accuracy
// comparison (docs/results/fashion_mnist.md).
//
// It takes vit_train's command line and resolves it the same way, then builds
// the run from train/run_plan.h as the trainer does: the same images (test
// split or --holdout tail), the same batch bytes in the same order (the
// project's loader, augmentation and label smoothing), the same learning rate
// and AdamW settings at every step, the same initial weights (ViTModel's
// initialisation from --seed, copied into the LibTorch model). The model is
// tools/torch_ref's TorchViT: autograd, torch::optim::AdamW, clip_grad_norm_.
// So the two runs differ in the arithmetic only, and the JSONL (--metrics-out)
// has vit_train's records ("train", "eval", "final" with time_to_acc), which
// tools/recipe_sweep.py reads with --vit-train pointing here.
//
// The clock is vit_train's: wall seconds of the training loop, evaluations
// included, start-up (data, model) excluded. --threads sets LibTorch's intra-op
// threads (0: its default, one per core). It computes on the CPU unless
// --device cuda asks for LibTorch's CUDA (where the LibTorch build has it).
//
// Not supported (refused with the flag's name): data parallelism, gradient
// accumulation, checkpoints and resume, export, --init-from, bf16, CUDA graphs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "data/loader.h"
#include "data/randaugment.h"
#include "runtime/cpu_backend.h"
#include "runtime/vit_model.h"
#include "tools/torch_ref/torch_vit.h"
#include "train/accuracy_milestones.h"
#include "train/error_text.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/run_plan.h"
#include "train/train_config.h"
#include "train/weight_ema.h"

namespace {

using namespace vitscale;
using namespace vitscale::train;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// What this baseline cannot do, named by flag; empty when the config is fine.
std::vector<std::string> unsupported(const TrainConfig& c) {
  std::vector<std::string> out;
  auto refuse = [&](bool bad, const std::string& what) {
    if (bad) out.push_back(what + " is not supported by vit_torch_train (the LibTorch recipe baseline)");
  };
  refuse(c.world_size != 1, "a world size above 1");
  refuse(c.gradient_accumulation_steps != 1, "--gradient-accumulation-steps above 1");
  refuse(c.zero_stage != 0, "--zero-stage");
  refuse(!c.save_dir.empty(), "--save-dir");
  refuse(!c.resume.empty(), "--resume");
  refuse(!c.export_model.empty(), "--export-model");
  refuse(!c.init_from.empty(), "--init-from");
  refuse(c.bf16, "--bf16");
  refuse(c.cuda_graphs, "--cuda-graphs");
  refuse(c.stop_at_step > 0, "--stop-at-step");
  return out;
}

// The initial weights of vit_train's run for this seed, in the flat layout.
std::vector<float> initial_weights(const ViTConfig& vc, const ImageNorm& norm, int source_side, std::uint64_t seed) {
  CpuBackend cpu(1);
  ViTModel model(vc, cpu, ModelShape{1, source_side}, norm);
  model.init_parameters(seed);
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(flat);
  return flat;
}

struct EvalOutcome {
  double accuracy = 0, loss = 0, seconds = 0;
  std::int64_t images = 0;
};

// One pass over the eval split: the data pipeline's eval batches (no
// augmentation, one-hot targets), LibTorch's forward without autograd.
EvalOutcome evaluate(torch_ref::TorchViT& model, const data::Dataset& eval, int batch_size) {
  const auto t0 = Clock::now();
  data::BatchSpec spec;
  spec.batch_size = batch_size;
  spec.mode = data::LoaderMode::eval;
  const data::BatchMaker maker(eval, spec);
  data::Batch batch = maker.allocate();
  data::AugmentScratch scratch;
  double correct = 0, loss = 0, images = 0;
  for (std::int64_t step = 0; step < maker.steps_per_epoch(); ++step) {
    maker.make(0, step, batch, scratch);
    if (batch.size == 0) continue;
    const std::size_t k = static_cast<std::size_t>(batch.num_classes);
    const std::size_t pixels = static_cast<std::size_t>(batch.channels) * batch.height * batch.width;
    const torch_ref::TorchForward f =
        model.forward({batch.image_data(), pixels * batch.size}, {batch.target_data(), k * batch.size}, batch.size,
                      /*train=*/false);
    for (int i = 0; i < batch.size; ++i) {
      const float* row = f.logits.data() + static_cast<std::size_t>(i) * k;
      const auto predicted = static_cast<int>(std::max_element(row, row + k) - row);  // as train/evaluation.cpp
      correct += predicted == batch.labels[static_cast<std::size_t>(i)] ? 1 : 0;
    }
    loss += static_cast<double>(f.loss) * batch.size;
    images += batch.size;
  }
  EvalOutcome r;
  r.images = static_cast<std::int64_t>(images);
  r.accuracy = images > 0 ? correct / images : 0;
  r.loss = images > 0 ? loss / images : 0;
  r.seconds = seconds_since(t0);
  return r;
}

int run(int argc, char** argv) {
  const auto start = Clock::now();
  int exit_code = 0;
  const auto cl = parse_command_line(argc, argv, exit_code);
  if (!cl) return exit_code;
  const TrainOptions file = cl->config_path.empty() ? TrainOptions{} : load_config_file(cl->config_path);
  TrainConfig config = resolve(file, cl->options, 1);
  if (const auto bad = unsupported(config); !bad.empty()) {
    for (const std::string& line : bad) std::cerr << "vit_torch_train: error: " << line << "\n";
    return 2;
  }
  if (cl->print_config) {
    std::cout << config.to_json().dump(2) << "\n";
    return 0;
  }

  RunDatasets sets = load_run_datasets(config);
  const ViTConfig vc = config.vit_config(sets.train.channels, sets.train.num_classes);
  const ImageNorm norm = image_norm_of(sets.train);
  const RunLength length = run_length(config, sets.train);
  const LrSchedule schedule(lr_schedule_spec(config, length.steps_per_epoch, length.total_steps));
  if (config.eval_batch_size == 0) config.eval_batch_size = config.micro_batch_size;

  // The initial weights first: the CPU backend that computes them sets the
  // process's OpenMP thread count, which LibTorch's threads are set after.
  const std::vector<float> weights = initial_weights(vc, norm, sets.train.height, config.seed);
  torch_ref::set_torch_threads(config.threads > 0 ? config.threads
                                                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch_ref::TorchOptions options;
  options.device = config.device == "cuda" ? "cuda" : "cpu";  // auto: the CPU, the baseline this tool is for
  torch_ref::TorchViT model(vc, norm, options);
  model.load_flat(weights);
  const bool average = config.ema_decay > 0;  // --ema-decay: vit_train's weight average (train/weight_ema.h)
  if (average) model.start_average();

  MetricsLog log(std::cout, config.metrics_out, false);
  if (config.holdout > 0) log.set_eval_split("holdout");
  std::ostringstream s;
  s << "vit_torch_train: " << torch_ref::torch_description() << ", " << torch_ref::torch_threads()
    << " intra-op threads; the recipe of vit_train, computed by LibTorch\n"
    << "model: " << config.model << " " << vc.describe() << ", " << model.table().total_numel() << " parameters\n"
    << "data: " << sets.train.describe() << "; " << (config.holdout > 0 ? "holdout " : "test ") << sets.eval.count
    << " images\n"
    << "batch: " << config.train_batch_size << "; " << length.steps_per_epoch << " steps/epoch, " << length.total_steps
    << " steps (" << length.epochs << " epochs)\n"
    << "schedule: " << schedule.describe()
    << (average ? "; weight average (EMA) decay " + std::to_string(config.ema_decay) +
                      " (evaluated in place of the live weights)"
                : "");
  log.note(s.str());
  log.event("start", {{"backend", torch_ref::torch_description()},
                      {"threads", torch_ref::torch_threads()},
                      {"parameters", model.table().total_numel()},
                      {"steps_per_epoch", length.steps_per_epoch},
                      {"total_steps", length.total_steps},
                      {"config", config.to_json()}});

  data::Loader loader(sets.train, train_loader_config(config, 1, 0, 0, 0));
  AccuracyMilestones milestones;
  const auto loop_start = Clock::now();
  auto window_start = loop_start;
  double window_excluded_s = 0, train_s = 0;
  std::int64_t window_steps = 0, epoch = 0, epoch_step = 0;
  double last_loss = 0, last_norm = 0, last_acc = 0, last_test_loss = 0;
  for (std::int64_t step = 1; step <= length.total_steps; ++step) {
    const auto t0 = Clock::now();
    data::BatchLease batch = loader.next();
    if (!batch) throw std::logic_error("the training loader ended early");
    const std::size_t pixels = static_cast<std::size_t>(batch->channels) * batch->height * batch->width;
    const std::size_t k = static_cast<std::size_t>(batch->num_classes);
    model.zero_grads();
    last_loss = model.forward({batch->image_data(), pixels * batch->size}, {batch->target_data(), k * batch->size},
                              batch->size)
                    .loss;
    model.backward();
    last_norm = model.optimizer_step(step_hyper(config, schedule, step)).value_or(NAN);
    if (average) model.update_average(WeightEma::decay_at(config.ema_decay, config.ema_warmup, step));
    batch.release();
    train_s += seconds_since(t0);
    ++window_steps;
    if (step % config.steps_per_print == 0 || step == length.total_steps) {
      const double window_s = seconds_since(window_start) - window_excluded_s;
      TrainRecord r;
      r.step = step;
      r.total_steps = length.total_steps;
      r.epoch = static_cast<int>(epoch) + 1;
      r.epochs = length.epochs;
      r.loss = last_loss;
      r.lr = schedule.lr(step);
      r.grad_norm = last_norm;
      r.images_per_s = window_s > 0 ? static_cast<double>(window_steps) * config.train_batch_size / window_s : 0;
      r.elapsed_s = seconds_since(loop_start);
      r.eta_s = r.elapsed_s / static_cast<double>(step) * static_cast<double>(length.total_steps - step);
      if (milestones.evaluations() > 0) r.test_acc = milestones.last(), r.best_test_acc = milestones.best();
      log.train(r);
      window_start = Clock::now();
      window_steps = 0;
      window_excluded_s = 0;
    }
    const bool epoch_end = ++epoch_step == length.steps_per_epoch;
    if (epoch_end) {
      // The epoch's leftover micro-batches are skipped, as the trainer does.
      for (std::int64_t i = length.steps_per_epoch; i < length.loader_steps_per_epoch; ++i) loader.next();
      ++epoch;
      epoch_step = 0;
    }
    if (epoch_end || step == length.total_steps) {
      EvalOutcome e = evaluate(model, sets.eval, config.eval_batch_size);
      std::optional<double> live_acc, live_loss;
      if (average) {  // as vit_train: the average is the run's accuracy, the live weights' beside it
        live_acc = e.accuracy, live_loss = e.loss;
        model.swap_average();
        const EvalOutcome avg = evaluate(model, sets.eval, config.eval_batch_size);
        model.swap_average();
        e.accuracy = avg.accuracy, e.loss = avg.loss, e.seconds += avg.seconds;
      }
      const double at = seconds_since(loop_start);
      milestones.record(e.accuracy, at);
      last_acc = e.accuracy;
      last_test_loss = e.loss;
      log.eval({static_cast<int>(epoch_end ? epoch : epoch + 1), step, e.images, e.accuracy, e.loss, e.seconds, at,
                live_acc, live_loss});
      window_excluded_s += e.seconds;
    }
  }
  FinalRecord f;
  f.test_acc = last_acc;
  f.test_loss = last_test_loss;
  f.images_per_s = train_s > 0 ? static_cast<double>(length.total_steps) * config.train_batch_size / train_s : 0;
  f.wall_s = seconds_since(start);
  f.steps = length.total_steps;
  f.milestones = milestones;
  log.final(f);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << error_text("vit_torch_train", e);
    return 1;
  }
}
