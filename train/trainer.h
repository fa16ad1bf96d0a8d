// trainer.h — the training loop: data → forward → backward → gradient sync →
// AdamW, evaluation at each epoch's end, logging, checkpoints, resume, and a
// clean stop on SIGTERM / SIGINT.
//
// One optimizer step = gradient_accumulation_steps micro-steps of
// train_micro_batch_size_per_gpu images on each rank (global batch
// train_batch_size); the loss is scaled by 1 / train_batch_size so that the
// accumulated, rank-summed gradient is the global-batch mean. An epoch is
// floor(images per rank / micro batch) / accumulation optimizer steps; the
// few micro-batches left over at an epoch's end are skipped (every step sees a
// full global batch, so a step's numbers do not depend on where it falls).
//
// Determinism: initialisation is Rng(seed); batch (epoch, micro-step) is a
// pure function of (seed, epoch, micro-step, rank) (data/loader.h); the LR is
// a pure function of the step. So a checkpoint needs only the weights, the
// AdamW moments (with --ema-decay, the weight average) and (step, epoch, step
// within the epoch), and a resumed run
// computes the same losses, bit for bit, as one never interrupted (on the same
// backend and thread count).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "runtime/backend.h"
#include "runtime/vit_model.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/model_card.h"
#include "train/signals.h"
#include "train/step_engine.h"
#include "train/step_graphs.h"
#include "train/train_config.h"

namespace vitscale::train {

struct EvalResult {
  double accuracy = 0, loss = 0;  // with --ema-decay: the weight average's
  std::int64_t images = 0;
  double seconds = 0;                              // both evaluations, with --ema-decay
  std::optional<double> live_accuracy, live_loss;  // with --ema-decay: the live weights'
};

class WeightEma;  // train/weight_ema.h

struct TrainResult {
  enum class Outcome { finished, interrupted, paused };
  Outcome outcome = Outcome::finished;
  int signal = 0;         // the signal that interrupted the run (0: none, or asked in-process)
  std::int64_t step = 0;  // optimizer steps done
  double test_acc = 0, test_loss = 0;
  double images_per_s = 0;  // training throughput of this process's run (evaluation excluded)
  double wall_s = 0;
  std::string checkpoint;  // the last checkpoint written ("" if none)
};

// Makes the step engine for a model (data-parallel runs pass their own).
using EngineFactory = std::function<std::unique_ptr<StepEngine>(ViTModel&, const TrainConfig&)>;

struct TrainerIo {
  std::ostream* console = nullptr;  // required
  StopSignal* stop = nullptr;       // required
  EngineFactory make_engine;        // empty: make_local_engine (world size 1)
  int rank = 0;                     // this process's rank (logs and checkpoints come from rank 0)
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();  // for wall_s
  // Called after each optimizer step's bookkeeping (logs, evaluation, saves),
  // with the number of steps done; for progress displays and tests.
  std::function<void(std::int64_t step)> on_step;
};

class Trainer {
 public:
  // Loads the datasets, plans the model and the optimizer, and either
  // initialises from the seed or loads --resume's checkpoint. Throws with one
  // line on anything that cannot work.
  Trainer(TrainConfig config, Backend& backend, TrainerIo io);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainResult run();
  EvalResult evaluate();
  // The model as it stands, described for --export-model and checkpoints (train/model_card.h).
  ModelCard model_card() const;

  const TrainConfig& config() const { return config_; }
  ViTModel& model() { return *model_; }
  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::int64_t total_steps() const { return total_steps_; }
  const TrainState& state() const { return state_; }

 private:
  struct StepOutcome {
    double loss = 0;  // mean over the global batch (only when logged)
    StepTimes times;
  };
  void load_data();
  void build_model();
  // Loads the checkpoint; returns its weight average (empty: none).
  std::vector<float> restore(const std::string& path);
  // Evaluates the weights the model holds now.
  EvalResult evaluate_current();
  // The model's plan, the engine's shards and the weight average's buffers.
  MemoryPlan memory_plan() const;
  void report_start();
  StepOutcome train_step(bool logged);
  // Runs one phase of the step: eagerly, or through graphs_ under --cuda-graphs.
  void run_phase(StepGraphs::Phase phase, const std::function<void()>& body, const AdamWHyper* hyper = nullptr);
  std::string save_checkpoint();
  void export_trained_model();  // --export-model; collective at ZeRO-3
  void log_step(const StepOutcome& o, bool logged);
  void report_flops(double step_seconds);
  // Wall seconds of the training loops so far (this session's and the resumed ones'), evaluations included.
  double loop_seconds() const;  // flops_profiler: the profiled step's count and rate

  TrainConfig config_;
  Backend& backend_;
  TrainerIo io_;
  MetricsLog log_;
  data::Dataset train_set_, test_set_;
  std::unique_ptr<ViTModel> model_;
  std::unique_ptr<StepEngine> engine_;
  std::unique_ptr<StepGraphs> graphs_;  // --cuda-graphs only
  std::unique_ptr<WeightEma> ema_;      // --ema-decay only
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<CheckpointDir> ckpt_dir_;
  struct LoaderHolder;
  std::unique_ptr<LoaderHolder> loader_;

  TrainState state_;
  std::int64_t steps_per_epoch_ = 0, total_steps_ = 0, loader_steps_per_epoch_ = 0;
  int epochs_ = 0;
  bool resumed_ = false;
  std::string last_checkpoint_;
  std::vector<std::string> init_notes_;  // what --init-from adapted (runtime/pretrained.h)
  std::string resplit_note_;             // set by restore() when the global batch is split another way
  std::int64_t last_checkpoint_step_ = -1;
  // Throughput window since the last logged step.
  std::chrono::steady_clock::time_point window_start_, loop_start_;
  std::int64_t window_steps_ = 0, session_steps_ = 0;
  double window_excluded_s_ = 0;  // evaluation and checkpoint time inside the window
  double session_train_s_ = 0;
  StepTimes window_times_;
};

const char* outcome_name(TrainResult::Outcome o);

}  // namespace vitscale::train
