#include "train/data_parallel_engine.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "parallel/comm_watchdog.h"

namespace vitscale {

DataParallelOptions data_parallel_options(const train::TrainConfig& config) {
  DataParallelOptions o;
  if (config.reduce_bucket_size <= 0)
    throw train::ConfigError("zero_optimization.reduce_bucket_size must be positive, got " +
                             std::to_string(config.reduce_bucket_size));
  o.reducer.bucket_bytes = static_cast<std::size_t>(config.reduce_bucket_size) * sizeof(float);
  o.reducer.overlap_comm = config.overlap_comm;
  o.zero_stage = config.zero_stage;
  o.allgather_bucket_elements = config.allgather_bucket_size;
  o.reduce_every_micro_step = config.reduce_every_micro_step;
  o.overlap_param_gather = !config.cuda_graphs;  // a captured optimizer phase must hold its whole gather
  o.zero3.prefetch_bucket_elements = config.stage3_prefetch_bucket_size;
  o.zero3.persistence_threshold = config.stage3_param_persistence_threshold;
  o.zero3.max_live_elements = config.stage3_max_live_parameters;
  return o;
}

CommOptions comm_options_from_env() {
  CommOptions o;
  if (const char* t = std::getenv("VITSCALE_COMM_TIMEOUT_S"); t && *t) {
    char* end = nullptr;
    o.timeout_s = std::strtod(t, &end);
    if (end == t || *end != '\0' || o.timeout_s < 0)
      throw std::invalid_argument(std::string("VITSCALE_COMM_TIMEOUT_S='") + t + "' is not a number of seconds >= 0");
  }
  if (const char* p = std::getenv("VITSCALE_MPI_PROGRESS"); p && *p) o.mpi_progress = parse_mpi_progress(p);
  if (const char* u = std::getenv("VITSCALE_MPI_POLL_US"); u && *u) {
    char* end = nullptr;
    const long us = std::strtol(u, &end, 10);
    if (end == u || *end != '\0' || us < 1 || us > 1000000)
      throw std::invalid_argument(std::string("VITSCALE_MPI_POLL_US='") + u + "' is not 1..1000000");
    o.mpi_poll_us = static_cast<int>(us);
  }
  return o;
}

DataParallelEngine::DataParallelEngine(Communicator& comm, ViTModel& model, const DataParallelOptions& options)
    : comm_(comm), dp_(comm, model, options) {}

std::string DataParallelEngine::describe() const {
  std::string s = dp_.memory_report();
  for (std::size_t at = s.find('\n'); at != std::string::npos; at = s.find('\n', at)) s.replace(at, 1, "; ");
  return s;
}

double DataParallelEngine::finish() { return dp_.finish().exposed_s; }

double DataParallelEngine::optimizer_step(const AdamWHyper& hyper) {
  const double before = dp_.last_timing().gather_s;
  dp_.optimizer_step(hyper);
  return dp_.last_timing().gather_s - before;
}

void TrainLaunch::abort_after_error(const std::string& message) {
  std::fflush(stdout);
  abort_job(message, [this] {
    if (comm_) comm_->abort();
  }, 1);
}

train::EngineFactory TrainLaunch::connect(Backend& backend, const std::string& config_identity) {
  comm_ = dist_.make_communicator(backend, comm_options_from_env());
  check_same_across_ranks(*comm_, "training configuration", config_identity);
  return [this](ViTModel& model, const train::TrainConfig& config) -> std::unique_ptr<train::StepEngine> {
    return std::make_unique<DataParallelEngine>(*comm_, model, data_parallel_options(config));
  };
}

}  // namespace vitscale
