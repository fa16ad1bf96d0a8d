#include "parallel/data_parallel.h"

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "parallel/bootstrap.h"

namespace vitscale {

float data_parallel_grad_scale(int micro_batch, int accumulation_steps, int world_size) {
  if (micro_batch < 1 || accumulation_steps < 1 || world_size < 1)
    throw std::invalid_argument("grad scale: micro batch " + std::to_string(micro_batch) + ", accumulation " +
                                std::to_string(accumulation_steps) + ", world " + std::to_string(world_size) +
                                " must all be positive");
  return 1.0f /
         (static_cast<float>(micro_batch) * static_cast<float>(accumulation_steps) * static_cast<float>(world_size));
}

DataParallel::DataParallel(Communicator& comm, ViTModel& model, const DataParallelOptions& options)
    : comm_(comm), model_(model), stage_(options.zero_stage) {
  const std::string where = "rank " + std::to_string(comm.rank()) + ": ";
  if (options.zero_stage < 0 || options.zero_stage > 3)
    throw std::invalid_argument(where + "zero_optimization.stage " + std::to_string(options.zero_stage) +
                                " is not supported (0, 1, 2 or 3)");
  if (model.resident_params() != (options.zero_stage < 3))
    throw std::invalid_argument(where + "ZeRO-" + std::to_string(options.zero_stage) + " needs a model built with" +
                                (options.zero_stage < 3 ? "" : "out") + " its full parameter buffer");
  if (!model.resident_gradients() && options.zero_stage < 2)
    throw std::invalid_argument(where + "a model without its gradient buffer needs ZeRO stage 2 or 3");
  if (options.reduce_every_micro_step && model.resident_gradients())
    throw std::invalid_argument(where + "reducing every micro-step needs a model built without its gradient buffer");
  // Ranks that bucket or shard differently would pair unrelated collectives.
  std::ostringstream fingerprint;
  fingerprint << model.config().describe() << " params=" << model.table().total_numel()
              << " activations=" << dtype_name(model.backend().activation_dtype())
              << " reduce_bucket_size=" << options.reducer.bucket_bytes
              << " first_bucket=" << options.reducer.first_bucket_bytes << " zero_stage=" << options.zero_stage
              << " allgather_bucket_size=" << options.allgather_bucket_elements
              << " every_micro_step=" << options.reduce_every_micro_step
              << " window=" << !model.resident_gradients() << " overlap_param_gather=" << options.overlap_param_gather
              << " stage3=" << options.zero3.prefetch_bucket_elements
              << "/" << options.zero3.persistence_threshold << "/" << options.zero3.max_live_elements;
  check_same_across_ranks(comm, "model and data-parallel configuration", fingerprint.str());

  const bool overlap_gather = options.zero_stage >= 1 && options.zero_stage <= 2 && options.reducer.overlap_comm &&
                              options.overlap_param_gather;
  if (options.zero_stage == 1) {
    zero1_ = std::make_unique<Zero1Optimizer>(comm, model.backend(), model.table(), options.allgather_bucket_elements,
                                              overlap_gather);
    reducer_ = std::make_unique<GradReducer>(comm, model.table(), model.grads(), options.reducer, zero1_->layout(),
                                             zero1_->shard_grads());
  } else if (options.zero_stage >= 2) {
    zero1_ = std::make_unique<Zero1Optimizer>(comm, model.backend(), model.table(), options.allgather_bucket_elements,
                                              overlap_gather);
    zero1_->set_stage(options.zero_stage);
    if (options.zero_stage == 3) {
      zero3_ = std::make_unique<Zero3Params>(comm, model.backend(), model.table(), zero1_->layout(), options.zero3);
      model.set_param_provider(zero3_.get());
    }
    const ShardedReduce sharded{!model.resident_gradients(), options.reduce_every_micro_step};
    reducer_ = std::make_unique<GradReducer>(comm, model.backend(), model.table(), model.grads(), options.reducer,
                                             zero1_->layout(), zero1_->shard_grads(), sharded);
  } else {
    adamw_ = std::make_unique<AdamWOptimizer>(model.backend(), model.table());
    reducer_ = std::make_unique<GradReducer>(comm, model.table(), model.grads(), options.reducer);
  }
  if (overlap_gather) model.set_param_arrival(this);
}

DataParallel::~DataParallel() {
  if (zero3_) model_.set_param_provider(nullptr);
  if (zero1_ && zero1_->overlaps_gather()) {
    model_.set_param_arrival(nullptr);
    try {
      wait_all();  // the weights (and a bf16 compute copy) stay whole for whoever reads them next
    } catch (const std::exception&) {
      // A failed collective has already been reported where it was waited for
      // first (or is being: this may be the unwinding); a destructor must not throw.
    }
  }
}

void DataParallel::wait_group(int group) {
  if (zero1_->wait_group(group)) model_.sync_compute_group(group);
}

void DataParallel::wait_all() {
  for (int g = 0; g < static_cast<int>(model_.table().weight_groups().size()); ++g) wait_group(g);
}

CommTiming DataParallel::finish() {
  timing_ = reducer_->finish();
  // The last step's overlapped parameter gathers, waited for during this step's forward.
  if (zero1_) timing_.gather_s += zero1_->take_overlapped_gather_seconds();
  // ZeRO-3: the group gathers of this step's passes (busy, hidden or not).
  if (zero3_) timing_.gather_s += zero3_->take_busy_seconds();
  return timing_;
}

double DataParallel::take_pass_wait_seconds() {
  const double window = reducer_->take_window_wait_seconds();
  if (zero3_) return window + zero3_->take_wait_seconds();
  return window + (zero1_ ? zero1_->take_overlapped_wait_seconds() : 0.0);
}

void DataParallel::optimizer_step(const AdamWHyper& hyper) {
  if (zero3_) {
    zero1_->update_shard(zero3_->master_shard(), hyper, &timing_);
    timing_.gather_s += zero3_->refresh();
    return;
  }
  if (zero1_) {
    // Overlapped: step() waits for what is still in flight, then issues this
    // step's gathers; wait_group refreshes each group's compute copy.
    if (zero1_->overlaps_gather()) wait_all();
    zero1_->step(model_.params(), hyper, &timing_);
    if (zero1_->overlaps_gather()) return;
  } else {
    adamw_->step(model_.params(), model_.grads(), hyper);
  }
  model_.sync_compute_params();
}

float DataParallel::grad_norm() const { return zero1_ ? zero1_->read_grad_norm() : adamw_->read_grad_norm(); }

std::size_t DataParallel::optimizer_bytes() const { return zero1_ ? zero1_->state_bytes() : adamw_->bytes(); }

void DataParallel::add_to_plan(MemoryPlan& plan) const {
  plan.optimizer = optimizer_bytes();
  plan.zero_stage = stage_;
  plan.rank = comm_.rank();
  plan.world = comm_.world_size();
  plan.grads += reducer_->working_bytes() + (zero1_ ? zero1_->shard_grad_bytes() : 0);
  if (zero3_) plan.params += zero3_->master_bytes() + zero3_->working_bytes();
}

std::string DataParallel::memory_report() const {
  std::ostringstream s;
  s << "data parallel: " << comm_.name() << ", rank " << comm_.rank() << " of " << comm_.world_size() << ", "
    << reducer_->plan().buckets.size() << " gradient buckets (reduce_bucket_size " << reducer_->options().bucket_bytes
    << " bytes, overlap_comm " << (reducer_->options().overlap_comm ? "on" : "off") << ")\n";
  if (zero1_) {
    s << zero1_->memory_report();
    if (const GradWindowPlan* w = reducer_->window())
      s << "\n" << w->describe() << (reducer_->options().overlap_comm ? "" : " (overlap_comm off)");
    if (zero3_) s << "\n" << zero3_->describe();
  } else {
    char line[160];
    std::snprintf(line, sizeof line, "optimizer state on rank %d: %.2f MiB (unsharded)", comm_.rank(),
                  static_cast<double>(adamw_->bytes()) / (1024.0 * 1024.0));
    s << line;
  }
  return s.str();
}

void DataParallel::gather_optimizer_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq) {
  if (zero1_) return zero1_->gather_state(exp_avg, exp_avg_sq);
  exp_avg.resize(static_cast<std::size_t>(adamw_->count()));
  exp_avg_sq.resize(exp_avg.size());
  model_.backend().copy_to_host(exp_avg.data(), adamw_->exp_avg().data, adamw_->exp_avg().bytes());
  model_.backend().copy_to_host(exp_avg_sq.data(), adamw_->exp_avg_sq().data, adamw_->exp_avg_sq().bytes());
}

void DataParallel::load_optimizer_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq) {
  if (zero1_) return zero1_->load_state(exp_avg, exp_avg_sq);
  const auto n = static_cast<std::size_t>(adamw_->count());
  if (exp_avg.size() != n || exp_avg_sq.size() != n)
    throw std::invalid_argument("optimizer state has " + std::to_string(exp_avg.size()) + " / " +
                                std::to_string(exp_avg_sq.size()) + " moments, the model has " + std::to_string(n));
  model_.backend().copy_to_device(adamw_->exp_avg().data, exp_avg.data(), adamw_->exp_avg().bytes());
  model_.backend().copy_to_device(adamw_->exp_avg_sq().data, exp_avg_sq.data(), adamw_->exp_avg_sq().bytes());
  model_.backend().synchronize();
}

}  // namespace vitscale
