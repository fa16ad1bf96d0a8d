#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "data/loader.h"
#include "runtime/pretrained.h"
#include "train/evaluation.h"
#include "train/flops_profile.h"
#include "train/memory_check.h"
#include "train/run_plan.h"
#include "train/weight_ema.h"

namespace vitscale::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The checkpoint --resume asks for: "" (fresh start), a file, or a directory's
// latest; "auto" resumes from --save-dir's latest when there is one.
std::string resume_path_for(const TrainConfig& c) {
  if (c.resume.empty()) return "";
  if (c.resume == "auto") {
    if (c.save_dir.empty())
      throw ConfigError("checkpoint.resume (--resume) 'auto' needs checkpoint.save_dir (--save-dir)");
    return latest_checkpoint(c.save_dir);
  }
  return resolve_resume_path(c.resume);
}

}  // namespace

const char* outcome_name(TrainResult::Outcome o) {
  switch (o) {
    case TrainResult::Outcome::finished:
      return "finished";
    case TrainResult::Outcome::interrupted:
      return "interrupted";
    case TrainResult::Outcome::paused:
      return "paused";
  }
  return "?";
}

// The training stream's loader, kept behind a pointer so trainer.h need not
// include the data pipeline's headers.
struct Trainer::LoaderHolder {
  std::unique_ptr<data::Loader> loader;
};

Trainer::Trainer(TrainConfig config, Backend& backend, TrainerIo io)
    : config_(std::move(config)),
      backend_(backend),
      io_(std::move(io)),
      log_(*io_.console, io_.rank == 0 ? config_.metrics_out : "", !resume_path_for(config_).empty(), io_.rank == 0,
           io_.rank == 0 ? csv_monitor_path(config_) : "") {
  if (!io_.console || !io_.stop) throw std::invalid_argument("Trainer: console and stop signal are required");
  // Everything that would otherwise fail late is checked now, before the data
  // is loaded: the metrics file is open (log_), the checkpoint directory exists
  // and takes a file, and below the resume checkpoint is read and verified.
  if (!config_.save_dir.empty() && io_.rank == 0)
    ckpt_dir_ = std::make_unique<CheckpointDir>(config_.save_dir, config_.keep_checkpoints);
  load_data();
  if (config_.holdout > 0) log_.set_eval_split("holdout");
  build_model();
  const std::string resume = resume_path_for(config_);
  std::vector<float> saved_average;
  if (!resume.empty()) {
    saved_average = restore(resume);
  } else {
    model_->init_parameters(config_.seed);
    state_.seed = config_.seed;
    if (!config_.init_from.empty())  // every rank reads the same file: the replicas start equal
      init_notes_ = init_from_pretrained(*model_, read_safetensors(config_.init_from), config_.init_from);
  }
  if (config_.ema_decay > 0) {  // starts from the weights the run starts from
    ema_ = std::make_unique<WeightEma>(*model_, config_.ema_decay, config_.ema_warmup);
    if (resumed_) ema_->write(saved_average);
  }
  model_->zero_grads();

  const data::LoaderConfig lc =
      train_loader_config(config_, engine_->world_size(), engine_->rank(), state_.epoch,
                          state_.epoch_step * config_.gradient_accumulation_steps,
                          [this](std::size_t bytes) { return backend_.allocate_host(bytes); });
  loader_ = std::make_unique<LoaderHolder>();
  loader_->loader = std::make_unique<data::Loader>(train_set_, lc);
  if (loader_->loader->steps_per_epoch() != loader_steps_per_epoch_)
    throw std::logic_error("the loader has " + std::to_string(loader_->loader->steps_per_epoch()) +
                           " micro-batches per epoch, the trainer planned " + std::to_string(loader_steps_per_epoch_));
  report_start();
}

Trainer::~Trainer() = default;

void Trainer::load_data() {
  std::function<void(const std::string&)> progress;
  if (io_.rank == 0) progress = [this](const std::string& line) { *io_.console << line << "\n"; };
  RunDatasets sets = load_run_datasets(config_, progress);
  train_set_ = std::move(sets.train);
  test_set_ = std::move(sets.eval);
}

void Trainer::build_model() {
  const ViTConfig vc = config_.vit_config(train_set_.channels, train_set_.num_classes);
  const ImageNorm norm = image_norm_of(train_set_);
  if (config_.eval_batch_size == 0) config_.eval_batch_size = config_.micro_batch_size;
  // One activation plan serves both: training micro-batches and evaluation batches.
  ModelShape shape{std::max(config_.micro_batch_size, config_.eval_batch_size), train_set_.height,
                   config_.activation_checkpointing};
  // ZeRO-2/3 keep shards of the gradients (and, at 3, the parameters) in the
  // engine: the model then holds no full-size buffer of them.
  shape.resident_gradients = !config_.zero_gradient_window();
  shape.resident_params = config_.zero_stage < 3;
  if (config_.zero_stage >= 2 && !io_.make_engine)
    throw ConfigError("zero_optimization.stage " + std::to_string(config_.zero_stage) +
                      " needs the data-parallel engine, which this vit_train was built without");
  const std::size_t rss_before = resident_bytes();
  model_ = std::make_unique<ViTModel>(vc, backend_, shape, norm);
  engine_ = io_.make_engine ? io_.make_engine(*model_, config_) : make_local_engine(*model_);
  if (engine_->world_size() != config_.world_size)
    throw std::logic_error("the step engine has world size " + std::to_string(engine_->world_size()) +
                           " but the config was resolved for " + std::to_string(config_.world_size));
  if (backend_.kind() == DeviceKind::cpu)  // on a GPU the allocations themselves fail (cudaMalloc)
    check_memory_plan(memory_plan(), rss_before, io_.rank);
  // resolve() allows --cuda-graphs at world size 1 only.
  if (config_.cuda_graphs) graphs_ = std::make_unique<StepGraphs>(backend_);

  const RunLength length = run_length(config_, train_set_);
  loader_steps_per_epoch_ = length.loader_steps_per_epoch;
  steps_per_epoch_ = length.steps_per_epoch;
  total_steps_ = length.total_steps;
  epochs_ = length.epochs;
  if (config_.stop_at_step > total_steps_)
    throw ConfigError("training.stop_at_step (--stop-at-step) " + std::to_string(config_.stop_at_step) +
                      " is past the run's " + std::to_string(total_steps_) + " steps");

  const LrScheduleSpec spec = lr_schedule_spec(config_, steps_per_epoch_, total_steps_);
  if (const auto last = LrSchedule(spec).betas(total_steps_); last && last->first >= 1.0)
    throw ConfigError("scheduler.params.decay_mom_rate (--decay-mom-rate) " + std::to_string(config_.decay_mom_rate) +
                      " takes OneCycle's beta1 to " + std::to_string(last->first) + " by step " +
                      std::to_string(total_steps_) + "; AdamW needs beta1 < 1");
  schedule_ = std::make_unique<LrSchedule>(spec);
}

MemoryPlan Trainer::memory_plan() const {
  MemoryPlan plan = model_->memory_plan();
  engine_->add_to_plan(plan);
  if (config_.ema_decay > 0) plan.ema = WeightEma::planned_bytes(model_->table());
  return plan;
}

std::vector<float> Trainer::restore(const std::string& path) {
  Checkpoint ckpt = read_checkpoint(path, model_->table());
  check_same_run(ckpt.config, config_.identity_json(), path);
  // (An average in the run but not in the file cannot pass check_same_run:
  // the identity then holds training.ema_decay. The other way round it can.)
  if (config_.ema_decay == 0 && !ckpt.ema.empty())
    throw ConfigError(
        path + ": the checkpoint carries a weight average (training.ema_decay " +
        ckpt.config.value("training", nlohmann::json::object()).value("ema_decay", nlohmann::json()).dump() +
        "); resume with the same --ema-decay, or it would be dropped");
  if (config_.ema_decay > 0 && ckpt.ema.empty())
    throw std::runtime_error(path +
                             ": the checkpoint has no weight average (ema.* tensors) although its config "
                             "sets training.ema_decay");
  const int saved_micro = ckpt.config.value("train_micro_batch_size_per_gpu", config_.micro_batch_size);
  const int saved_accumulation = ckpt.config.value("gradient_accumulation_steps", config_.gradient_accumulation_steps);
  if (saved_micro != config_.micro_batch_size || saved_accumulation != config_.gradient_accumulation_steps)
    resplit_note_ =
        "the global batch " + std::to_string(config_.train_batch_size) + " was micro " + std::to_string(saved_micro) +
        " x accumulation " + std::to_string(saved_accumulation) + " x world " +
        std::to_string(config_.train_batch_size / std::max(1, saved_micro * saved_accumulation)) +
        " when saved, and continues as micro " + std::to_string(config_.micro_batch_size) + " x accumulation " +
        std::to_string(config_.gradient_accumulation_steps) + " x world " + std::to_string(config_.world_size);
  model_->write_params(ckpt.params);
  engine_->load_optimizer_state(ckpt.exp_avg, ckpt.exp_avg_sq);
  state_ = ckpt.state;
  if (state_.epoch_step >= steps_per_epoch_ || state_.step > total_steps_)
    throw std::runtime_error(path + ": checkpoint position (step " + std::to_string(state_.step) + ", epoch " +
                             std::to_string(state_.epoch) + ") does not fit this run");
  resumed_ = true;
  last_checkpoint_ = path;
  last_checkpoint_step_ = state_.step;
  return std::move(ckpt.ema);
}

void Trainer::report_start() {
  if (io_.rank != 0) return;
  const ViTConfig& vc = model_->config();
  std::ostringstream s;
  s << "vit_train: " << backend_.name() << ", " << engine_->describe() << "\n";
  s << "model: " << config_.model << " " << vc.describe() << ", " << model_->table().total_numel()
    << " parameters (activations " << dtype_name(backend_.activation_dtype()) << ")\n";
  s << "data: " << train_set_.describe() << "; "
    << (config_.holdout > 0 ? "evaluating on the holdout (the train split's last " : "test ") << test_set_.count
    << " images" << (config_.holdout > 0 ? "; the test split is not read)\n" : "\n");
  for (const auto* set : {&train_set_, &test_set_})
    for (const std::string& note : set->notes) s << note << "\n";
  s << "batch: " << config_.train_batch_size << " = micro " << config_.micro_batch_size << " x accumulation "
    << config_.gradient_accumulation_steps << " x world " << config_.world_size << "; " << steps_per_epoch_
    << " steps/epoch, " << total_steps_ << " steps (" << epochs_ << " epochs)\n";
  s << "schedule: " << schedule_->describe() << "; AdamW betas (" << config_.beta1 << ", " << config_.beta2 << ") eps "
    << config_.eps << " wd " << config_.weight_decay << ", clip " << config_.gradient_clipping << ", label smoothing "
    << config_.label_smoothing << ", seed " << config_.seed << "\n";
  const MemoryPlan plan = memory_plan();
  s << plan.format();
  if (ema_)
    s << "weight average (EMA): decay " << config_.ema_decay
      << (config_.ema_warmup ? ", warm-up min(decay, (1 + step) / (10 + step))" : ", no warm-up")
      << "; evaluated and exported in place of the live weights (both are evaluated)\n";
  for (const std::string& note : config_notes(config_)) s << note << "\n";
  if (resumed_)
    s << "resumed from " << last_checkpoint_ << " at step " << state_.step << " (epoch " << state_.epoch + 1
      << ", step " << state_.epoch_step << " of it)\n";
  if (!resplit_note_.empty()) s << resplit_note_ << "\n";
  if (!config_.init_from.empty() && !resumed_) {
    s << "initialised from " << config_.init_from << " (optimizer and schedule start fresh)\n";
    for (const std::string& note : init_notes_) s << note << "\n";
  }
  std::string text = s.str();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  log_.note(text);
  nlohmann::ordered_json start = {{"backend", backend_.name()},
                                  {"parameters", model_->table().total_numel()},
                                  {"steps_per_epoch", steps_per_epoch_},
                                  {"total_steps", total_steps_},
                                  // rank 0's bytes at the run's ZeRO stage and checkpointing
                                  {"memory_plan",
                                   {{"zero_stage", plan.zero_stage},
                                    {"activation_checkpointing", plan.activation_checkpointing},
                                    {"params", plan.params},
                                    {"grads", plan.grads},
                                    {"compute_params", plan.compute_params},
                                    {"optimizer", plan.optimizer},
                                    {"activations", plan.activations},
                                    {"ema", plan.ema},
                                    {"total", plan.total()}}},
                                  {"config", config_.to_json()}};
  log_.event(resumed_ ? "resume" : "start",
             resumed_ ? nlohmann::ordered_json{{"step", state_.step}, {"checkpoint", last_checkpoint_}} : start);
}

void Trainer::run_phase(StepGraphs::Phase phase, const std::function<void()>& body, const AdamWHyper* hyper) {
  if (graphs_)
    graphs_->run(phase, body, hyper);
  else
    body();
}

Trainer::StepOutcome Trainer::train_step(bool logged) {
  StepOutcome out;
  const bool breakdown = config_.wall_clock_breakdown;
  const int accum = config_.gradient_accumulation_steps;
  const float grad_scale = 1.0f / static_cast<float>(config_.train_batch_size);
  auto sync = [&] {
    if (breakdown) backend_.synchronize();  // phase times are only honest on an idle device
  };
  double loss_sum = 0;
  // Parameter-gather and gradient-window waits inside forward and backward are exposed
  // communication: moved from the pass times to comm (evaluation's, since the
  // last step, dropped here).
  engine_->take_pass_wait_seconds();
  double pass_wait = 0;
  for (int i = 0; i < accum; ++i) {
    auto t0 = Clock::now();
    data::BatchLease batch = loader_->loader->next();
    if (!batch) throw std::logic_error("the training loader ended early");
    auto t1 = Clock::now();
    if (graphs_ && batch->size != config_.micro_batch_size)
      throw std::logic_error("a training batch of " + std::to_string(batch->size) +
                             " images under --cuda-graphs, "
                             "whose graphs were captured for " +
                             std::to_string(config_.micro_batch_size));
    model_->upload_batch(batch->image_data(), batch->target_data(), batch->size);
    // The copy from the lease's (pinned) memory may still be queued: the slot
    // goes back to the loader with a fence that the worker refilling it waits
    // on, so this thread runs on to queue the step. (With the breakdown on,
    // the device was idle before the copy, so sync() times it.)
    batch.release(backend_.host_reads_done());
    sync();
    auto t1_uploaded = Clock::now();
    run_phase(StepGraphs::Phase::forward, [&] { model_->forward(grad_scale); });
    sync();
    auto t2 = Clock::now();
    const double forward_wait = engine_->take_pass_wait_seconds();
    engine_->begin_micro_step(i == accum - 1);
    run_phase(StepGraphs::Phase::backward, [&] { model_->backward(engine_->listener()); });
    if (logged)
      for (float l : model_->read_losses()) loss_sum += l;
    sync();
    auto t3 = Clock::now();
    out.times.data += std::chrono::duration<double>(t1 - t0).count();
    out.times.upload += std::chrono::duration<double>(t1_uploaded - t1).count();
    // (The waits happen inside the phase; max() only guards the clock's rounding.)
    out.times.forward += std::max(0.0, std::chrono::duration<double>(t2 - t1_uploaded).count() - forward_wait);
    const double backward_wait = engine_->take_pass_wait_seconds();
    out.times.backward += std::max(0.0, std::chrono::duration<double>(t3 - t2).count() - backward_wait);
    pass_wait += forward_wait + backward_wait;
  }
  auto t4 = Clock::now();
  engine_->finish();
  sync();
  auto t5 = Clock::now();
  const AdamWHyper h = step_hyper(config_, *schedule_, state_.step + 1);
  double opt_comm = 0;
  // The average takes the previous step's weights now that forward has waited
  // for all of them (eagerly: not part of a captured graph).
  if (ema_) ema_->settle();
  run_phase(
      StepGraphs::Phase::optimizer,
      [&] {
        opt_comm = engine_->optimizer_step(h);
        model_->zero_grads();
      },
      &h);
  sync();
  auto t6 = Clock::now();
  // Exposed communication: what finish() still waited for once backward's
  // compute was done (with the breakdown on, the device was idle when it
  // started), plus the optimizer's own collectives (ZeRO-1's all-gather), plus
  // the passes' waits for parameter gathers and gradient-window slots.
  out.times.comm = std::chrono::duration<double>(t5 - t4).count() + opt_comm + pass_wait;
  out.times.optimizer = std::max(0.0, std::chrono::duration<double>(t6 - t5).count() - opt_comm);
  out.times.comm_total = engine_->comm_total_seconds();
  if (logged) {
    double sums[2] = {loss_sum, static_cast<double>(config_.micro_batch_size) * accum};
    engine_->all_reduce_sum(sums);
    out.loss = sums[0] / sums[1];
  }
  return out;
}

EvalResult Trainer::evaluate() {
  if (!ema_) return evaluate_current();
  const EvalResult live = evaluate_current();
  EvalResult r;
  ema_->with_average([&] { r = evaluate_current(); });
  r.live_accuracy = live.accuracy;
  r.live_loss = live.loss;
  r.seconds += live.seconds;
  return r;
}

EvalResult Trainer::evaluate_current() {
  if (ema_) ema_->settle();  // the live weights are complete (and the average current) before a forward reads them
  const auto t0 = Clock::now();
  EvalPass pass;
  pass.batch_size = config_.eval_batch_size;
  pass.world_size = engine_->world_size();
  pass.rank = engine_->rank();
  pass.workers = config_.loader_workers;
  const EvalSums s = evaluate_split(*model_, backend_, test_set_, pass);
  double sums[3] = {s.correct, s.loss, s.images};  // this rank's share: summed over ranks
  engine_->all_reduce_sum(sums);
  EvalResult r;
  r.images = static_cast<std::int64_t>(sums[2]);
  r.accuracy = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
  r.loss = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
  r.seconds = seconds_since(t0);
  return r;
}

ModelCard Trainer::model_card() const {
  ModelCard c;
  c.vit = model_->config();
  c.norm = image_norm_of(train_set_);
  c.class_names = train_set_.class_names;
  if (c.class_names.size() != static_cast<std::size_t>(c.vit.num_classes)) {
    c.class_names.clear();
    for (int k = 0; k < c.vit.num_classes; ++k) c.class_names.push_back("class_" + std::to_string(k));
  }
  c.source_image_size = train_set_.height;
  c.train_config = config_.to_json();
  c.result = {{"step", state_.step},
              {"eval_epoch", state_.last_eval_epoch},
              {"test_acc", state_.last_test_acc},
              {"test_loss", state_.last_test_loss}};
  return c;
}

std::string Trainer::save_checkpoint() {
  // The same decision on every rank: gathering ZeRO-1's moments is collective.
  if (config_.save_dir.empty() || last_checkpoint_step_ == state_.step) return last_checkpoint_;
  Checkpoint c;
  engine_->gather_optimizer_state(c.exp_avg, c.exp_avg_sq);  // collective: every rank
  const bool writes = io_.rank == 0 && ckpt_dir_;
  // ZeRO-3: gathering the weights is collective, so every rank reads them.
  if (writes || !model_->resident_params()) {
    c.params.resize(static_cast<std::size_t>(model_->table().total_numel()));
    model_->read_params(c.params);
  }
  if (writes && ema_) {
    c.ema.resize(c.params.size());
    ema_->read(c.ema);
  }
  if (writes) {
    c.state = state_;
    c.state.train_s += session_train_s_;
    c.state.loop_s = loop_seconds();
    c.config = config_.to_json();
    c.model_card = model_card_json(model_card()).dump();
    const auto t0 = Clock::now();
    last_checkpoint_ = ckpt_dir_->save(model_->table(), c);
    log_.event("checkpoint", {{"step", state_.step}, {"path", last_checkpoint_}, {"write_s", seconds_since(t0)}});
    log_.note("checkpoint: " + last_checkpoint_ + " (step " + std::to_string(state_.step) + ")");
  }
  last_checkpoint_step_ = state_.step;
  return last_checkpoint_;
}

void Trainer::report_flops(double step_seconds) {
  if (io_.rank != 0) return;
  const FlopsProfile p = flops_profile(
      model_->config(), static_cast<std::int64_t>(config_.micro_batch_size) * config_.gradient_accumulation_steps,
      config_.world_size, state_.step + 1, step_seconds);
  log_.note(p.describe());
  log_.event("flops_profile", p.to_json());
  if (!config_.flops_output_file.empty()) write_flops_profile(p, config_.flops_output_file);
}

double Trainer::loop_seconds() const {
  return state_.loop_s + (loop_start_ == Clock::time_point{} ? 0.0 : seconds_since(loop_start_));
}

void Trainer::log_step(const StepOutcome& o, bool logged) {
  window_times_ += o.times;
  ++window_steps_;
  if (!logged) return;
  const double window_s = seconds_since(window_start_) - window_excluded_s_;
  TrainRecord r;
  r.step = state_.step;
  r.total_steps = total_steps_;
  r.epoch = state_.epoch + 1;  // 1-based; the epoch-end bookkeeping comes after the log
  r.epochs = epochs_;
  r.loss = o.loss;
  r.lr = schedule_->lr(state_.step);
  r.grad_norm = engine_->grad_norm();
  r.images_per_s = window_s > 0 ? static_cast<double>(window_steps_) * config_.train_batch_size / window_s : 0;
  r.elapsed_s = seconds_since(loop_start_);
  // ETA from this session's average step time, evaluations included.
  r.eta_s = session_steps_ > 0
                ? r.elapsed_s / static_cast<double>(session_steps_) * static_cast<double>(total_steps_ - state_.step)
                : 0;
  if (state_.milestones.evaluations() > 0)
    r.test_acc = state_.milestones.last(), r.best_test_acc = state_.milestones.best();
  if (config_.wall_clock_breakdown) r.breakdown = window_times_.scaled(1.0 / static_cast<double>(window_steps_));
  log_.train(r);
  window_start_ = Clock::now();
  window_steps_ = 0;
  window_excluded_s_ = 0;
  window_times_ = {};
}

TrainResult Trainer::run() {
  TrainResult result;
  loop_start_ = window_start_ = Clock::now();
  auto finish = [&](TrainResult::Outcome outcome) {
    result.outcome = outcome;
    result.step = state_.step;
    result.test_acc = state_.last_test_acc;
    result.test_loss = state_.last_test_loss;
    result.images_per_s =
        session_train_s_ > 0 ? static_cast<double>(session_steps_) * config_.train_batch_size / session_train_s_ : 0;
    result.wall_s = seconds_since(io_.start);
    result.checkpoint = last_checkpoint_;
    return result;
  };

  while (state_.step < total_steps_) {
    // A step boundary: every rank agrees whether to stop (one may have been signalled).
    if (engine_->any_rank(io_.stop->requested())) {
      const int sig = io_.stop->signal_number();
      const std::string path = save_checkpoint();
      result.signal = sig;
      log_.event("interrupted", {{"step", state_.step}, {"signal", sig}, {"checkpoint", path}});
      log_.note(std::string("interrupted") + (sig ? " by signal " + std::to_string(sig) : "") + " at step " +
                std::to_string(state_.step) +
                (path.empty() ? ": no --save-dir, nothing saved"
                              : ": checkpoint " + path + "; continue with --resume " + config_.save_dir));
      return finish(TrainResult::Outcome::interrupted);
    }
    const bool logged = (state_.step + 1) % config_.steps_per_print == 0 || state_.step + 1 == total_steps_;
    const bool profiled = config_.flops_profiler && state_.step + 1 == config_.flops_profile_step;
    if (profiled) backend_.synchronize();  // the profiled step starts and ends on an idle device
    const auto t0 = Clock::now();
    const StepOutcome o = train_step(logged);
    if (profiled) {
      backend_.synchronize();
      report_flops(seconds_since(t0));
    }
    session_train_s_ += seconds_since(t0);
    ++state_.step;
    ++state_.epoch_step;
    ++session_steps_;
    state_.images_seen += config_.train_batch_size;
    if (ema_) ema_->step_done(state_.step);
    log_step(o, logged);

    if (state_.epoch_step == steps_per_epoch_) {
      // Skip the epoch's leftover micro-batches (fewer than one accumulation window).
      for (std::int64_t i = steps_per_epoch_ * config_.gradient_accumulation_steps; i < loader_steps_per_epoch_; ++i)
        loader_->loader->next();
      ++state_.epoch;
      state_.epoch_step = 0;
      const EvalResult e = evaluate();
      state_.last_eval_epoch = state_.epoch;
      state_.last_test_acc = e.accuracy;
      state_.last_test_loss = e.loss;
      const double at = loop_seconds();
      state_.milestones.record(e.accuracy, at);
      log_.eval({state_.epoch, state_.step, e.images, e.accuracy, e.loss, e.seconds, at, e.live_accuracy, e.live_loss});
      window_excluded_s_ += e.seconds;  // keep evaluation out of the throughput
    }
    if (config_.save_every > 0 && state_.step % config_.save_every == 0) save_checkpoint();
    if (io_.on_step) io_.on_step(state_.step);
    if (config_.stop_at_step > 0 && state_.step == config_.stop_at_step && state_.step < total_steps_) {
      const std::string path = save_checkpoint();
      log_.event("paused", {{"step", state_.step}, {"checkpoint", path}});
      log_.note("stopped at step " + std::to_string(state_.step) +
                " as asked (--stop-at-step); continue with --resume " + config_.save_dir);
      return finish(TrainResult::Outcome::paused);
    }
  }

  // The run ended between epoch ends (--max-steps): evaluate what it reached.
  if (state_.last_eval_epoch == 0 || state_.epoch_step != 0) {
    const EvalResult e = evaluate();
    state_.last_test_acc = e.accuracy;
    state_.last_test_loss = e.loss;
    const double at = loop_seconds();
    state_.milestones.record(e.accuracy, at);
    log_.eval(
        {state_.epoch + 1, state_.step, e.images, e.accuracy, e.loss, e.seconds, at, e.live_accuracy, e.live_loss});
  }
  if (!config_.save_dir.empty()) save_checkpoint();
  if (!config_.export_model.empty()) export_trained_model();
  finish(TrainResult::Outcome::finished);
  log_.final({result.test_acc, result.test_loss, result.images_per_s, result.wall_s, result.step, state_.milestones});
  return result;
}

void Trainer::export_trained_model() {
  // ZeRO-3: the weights are sharded; every rank takes part in gathering them,
  // and rank 0 writes them through a resident copy of the model (one image's
  // activations: it runs nothing).
  std::unique_ptr<ViTModel> resident;
  if (!model_->resident_params()) {
    std::vector<float> full(static_cast<std::size_t>(model_->table().total_numel()));
    model_->read_params(full);  // collective
    if (io_.rank != 0) return;
    resident = std::make_unique<ViTModel>(model_->config(), backend_, ModelShape{1, model_->source_image_size()},
                                          model_->image_norm());
    resident->write_params(full);
  }
  if (io_.rank != 0) return;
  ExportedModel m;
  const auto write = [&] { m = export_model(resident ? *resident : *model_, model_card(), config_.export_model); };
  if (ema_)  // timm's convention: the average is the model one ships
    ema_->with_average(write);
  else
    write();
  log_.event("export", {{"weights", m.weights}, {"card", m.card}, {"ema", ema_ != nullptr}});
  log_.note("model: " + m.weights + (ema_ ? " (the weight average, timm names)" : " (weights, timm names)") + " and " +
            m.card + " (timm arguments, class names)");
}

}  // namespace vitscale::train
