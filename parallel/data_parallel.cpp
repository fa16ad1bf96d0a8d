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
    : comm_(comm), model_(model) {
  if (options.zero_stage != 0 && options.zero_stage != 1)
    throw std::invalid_argument("zero_optimization.stage " + std::to_string(options.zero_stage) +
                                " is not supported (0 or 1)");
  // Ranks that bucket or shard differently would pair unrelated collectives.
  std::ostringstream fingerprint;
  fingerprint << model.config().describe() << " params=" << model.table().total_numel()
              << " activations=" << dtype_name(model.backend().activation_dtype())
              << " reduce_bucket_size=" << options.reducer.bucket_bytes
              << " first_bucket=" << options.reducer.first_bucket_bytes << " zero_stage=" << options.zero_stage
              << " allgather_bucket_size=" << options.allgather_bucket_elements;
  check_same_across_ranks(comm, "model and data-parallel configuration", fingerprint.str());

  if (options.zero_stage == 1) {
    zero1_ = std::make_unique<Zero1Optimizer>(comm, model.backend(), model.table(), options.allgather_bucket_elements);
    reducer_ = std::make_unique<GradReducer>(comm, model.table(), model.grads(), options.reducer, zero1_->layout(),
                                             zero1_->shard_grads());
  } else {
    adamw_ = std::make_unique<AdamWOptimizer>(model.backend(), model.table());
    reducer_ = std::make_unique<GradReducer>(comm, model.table(), model.grads(), options.reducer);
  }
}

DataParallel::~DataParallel() = default;

CommTiming DataParallel::finish() {
  timing_ = reducer_->finish();
  return timing_;
}

void DataParallel::optimizer_step(const AdamWHyper& hyper) {
  if (zero1_) {
    zero1_->step(model_.params(), hyper, &timing_);
  } else {
    adamw_->step(model_.params(), model_.grads(), hyper);
  }
  model_.sync_compute_params();
}

float DataParallel::grad_norm() const { return zero1_ ? zero1_->read_grad_norm() : adamw_->read_grad_norm(); }

std::size_t DataParallel::optimizer_bytes() const { return zero1_ ? zero1_->state_bytes() : adamw_->bytes(); }

std::string DataParallel::memory_report() const {
  std::ostringstream s;
  s << "data parallel: " << comm_.name() << ", rank " << comm_.rank() << " of " << comm_.world_size() << ", "
    << reducer_->plan().buckets.size() << " gradient buckets (reduce_bucket_size " << reducer_->options().bucket_bytes
    << " bytes, overlap_comm " << (reducer_->options().overlap_comm ? "on" : "off") << ")\n";
  if (zero1_) {
    s << zero1_->memory_report();
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
