// data_parallel_engine.h — data parallelism plugged into vit_train's seam (train/step_engine.h).
// It lives in train/ because it depends on both: train/ -> parallel/, one way.
//
// vit_train's main() does, at any world size:
//   vitscale::TrainLaunch launch(&argc, &argv);          // MPI when started by mpirun/srun
//   config = resolve(file, flags, launch.world_size());
//   backend = make_backend(config, launch.cuda_device()); // CPU ranks: launch.cpu_threads()
//   io.rank = launch.rank();
//   io.make_engine = launch.connect(*backend, config.identity_json().dump());
// connect() builds the communicator (NCCL on the GPU, MPI for CPU ranks, local
// for one CPU process), refuses configurations that differ across ranks, and
// returns the factory the Trainer calls to wrap its model in a DataParallel
// step engine (bucketed overlapped all-reduce or ZeRO-1 per the config).
//
// Environment knobs (no config keys needed): VITSCALE_COMM_TIMEOUT_S (watchdog,
// default 300; 0 disables), VITSCALE_MPI_PROGRESS (thread | polling |
// nonblocking), VITSCALE_MPI_POLL_US.
#pragma once

#include <memory>
#include <string>

#include "parallel/bootstrap.h"
#include "parallel/comm_timing.h"
#include "parallel/data_parallel.h"
#include "train/step_engine.h"
#include "train/trainer.h"

namespace vitscale {

// TrainConfig's DeepSpeed keys to the reducer's options (reduce_bucket_size
// is counted in elements there, as DeepSpeed does; f32 gradients are 4 bytes).
DataParallelOptions data_parallel_options(const train::TrainConfig& config);

// CommOptions from the environment variables above; throws naming a bad value.
CommOptions comm_options_from_env();

// A StepEngine over DataParallel. last_timing() has the step's full
// communication figures (busy, exposed, overlap) for metrics.
class DataParallelEngine final : public train::StepEngine {
 public:
  DataParallelEngine(Communicator& comm, ViTModel& model, const DataParallelOptions& options);

  int rank() const override { return comm_.rank(); }
  int world_size() const override { return comm_.world_size(); }
  std::string describe() const override;  // one line: engine, buckets, optimizer memory
  void begin_micro_step(bool final_micro_step) override { dp_.begin_micro_step(final_micro_step); }
  GradReadyListener* listener() override { return dp_.listener(); }
  double finish() override;
  double optimizer_step(const AdamWHyper& hyper) override;
  float grad_norm() const override { return dp_.grad_norm(); }
  double take_pass_wait_seconds() override { return dp_.take_pass_wait_seconds(); }
  std::size_t optimizer_bytes() const override { return dp_.optimizer_bytes(); }
  void add_to_plan(MemoryPlan& plan) const override { dp_.add_to_plan(plan); }
  void gather_optimizer_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq) override {
    dp_.gather_optimizer_state(exp_avg, exp_avg_sq);
  }
  void load_optimizer_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq) override {
    dp_.load_optimizer_state(exp_avg, exp_avg_sq);
  }
  void all_reduce_sum(std::span<double> values) override { comm_.all_reduce_host(values, HostReduce::sum); }

  const CommTiming& last_timing() const { return dp_.last_timing(); }
  // The last step's total communication: the engine's busy time on gradient
  // collectives plus ZeRO-1's norm all-reduce and all-gather. Against finish()'s
  // exposed seconds this gives the overlap ratio (for a StepEngine virtual of
  // the same name, should train/ add one for the metrics).
  double comm_total_seconds() const override { return dp_.last_timing().reduce_s + dp_.last_timing().gather_s; }

 private:
  Communicator& comm_;
  DataParallel dp_;
};

class TrainLaunch {
 public:
  TrainLaunch(int* argc, char*** argv) : dist_(argc, argv) {}
  int rank() const { return dist_.rank(); }
  int world_size() const { return dist_.world_size(); }
  int cuda_device() const { return dist_.cuda_device(); }
  int cpu_threads() const { return dist_.cpu_threads(); }
  const LaunchInfo& launch() const { return dist_.launch(); }

  // Collective. The returned factory refers to this TrainLaunch: keep it alive
  // for as long as the Trainer.
  train::EngineFactory connect(Backend& backend, const std::string& config_identity);
  Communicator& comm() { return *comm_; }

  // This rank failed: prints `message` (already one or more "vit_train: error:
  // rank R: ..." lines) at once, aborts the communicator and the MPI job (exit
  // status 1), so that the other ranks end within seconds instead of waiting in
  // a collective or MPI_Finalize this rank never reaches. Never returns.
  [[noreturn]] void abort_after_error(const std::string& message);

 private:
  Distributed dist_;  // first in, last out: MPI outlives the communicator
  std::unique_ptr<Communicator> comm_;
};

}  // namespace vitscale
