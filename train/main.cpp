// main.cpp — vit_train: parse, resolve, build, train; every failure is one line
// "vit_train: error: ..." per problem (a config file's problems all at once)
// and a non-zero exit.
//
// Exit status: 0 finished (or paused by --stop-at-step); 1 error; 2 bad command
// line; 128 + signal when SIGTERM/SIGINT stopped the run (after its checkpoint
// was written), the shell's convention for "ended by that signal".
//
// Launch: one process, or one per GPU / CPU rank under mpirun or srun. When the
// build has parallel/'s engine (VITSCALE_TRAIN_DATA_PARALLEL), TrainLaunch
// finds rank and world size and the step engine all-reduces gradients (or runs
// ZeRO-1); otherwise vit_train is single-process.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "train/device.h"
#include "train/error_text.h"
#include "train/signals.h"
#include "train/train_config.h"
#include "train/trainer.h"

#ifdef VITSCALE_TRAIN_DATA_PARALLEL
#include "train/data_parallel_engine.h"
#endif

namespace vitscale {
class TrainLaunch;  // train/data_parallel_engine.h, when the build has it
}

namespace {

// Test-only fault injection: VITSCALE_TEST_FAULT="RANK:STEP" makes that rank
// throw after that optimizer step, as an error mid-training would (the tests
// of tests/parallel/tests.cmake check that the whole job then ends at once).
std::function<void(std::int64_t)> injected_fault(int rank) {
  const char* spec = std::getenv("VITSCALE_TEST_FAULT");
  if (!spec || !*spec) return {};
  int fault_rank = -1;
  long long fault_step = -1;
  char tail = 0;
  if (std::sscanf(spec, "%d:%lld%c", &fault_rank, &fault_step, &tail) != 2 || fault_rank < 0 || fault_step < 1)
    throw std::invalid_argument(std::string("VITSCALE_TEST_FAULT='") + spec + "' is not RANK:STEP");
  if (fault_rank != rank) return {};
  return [fault_step](std::int64_t step) {
    if (step == fault_step)
      throw std::runtime_error("injected fault after step " + std::to_string(step) + " (VITSCALE_TEST_FAULT)");
  };
}

std::string error_text(const std::exception& e, int rank) { return vitscale::train::error_text("vit_train", e, rank); }

using vitscale::train::CommandLine;

// Everything after the launch: resolve, build, train. world_size > 1 only
// with the data-parallel engine.
int train(const CommandLine& cl, const vitscale::train::TrainOptions& file, vitscale::train::StopSignal& stop,
          std::chrono::steady_clock::time_point start, int world_size, int rank, int cuda_device,
          [[maybe_unused]] vitscale::TrainLaunch* launch) {
  using namespace vitscale::train;
  TrainConfig config = resolve(file, cl.options, world_size);
  if (cl.print_config) {
    if (rank == 0) {
      std::cout << config.to_json().dump(2) << "\n";
      for (const std::string& note : config_notes(config)) std::cerr << "vit_train: " << note << "\n";
    }
    return 0;
  }
#ifdef VITSCALE_TRAIN_DATA_PARALLEL
  // CPU ranks sharing a node share its cores unless --threads says otherwise.
  if (config.threads == 0 && world_size > 1) config.threads = launch->cpu_threads();
#endif
  const auto backend = make_backend(config, cuda_device);
  TrainerIo io;
  io.console = &std::cout;
  io.stop = &stop;
  io.start = start;
  io.rank = rank;
  io.on_step = injected_fault(rank);
#ifdef VITSCALE_TRAIN_DATA_PARALLEL
  // --cuda-graphs (world size 1 only) keeps the plain single-process engine:
  // no communicator callbacks or host-timed collectives inside captured phases.
  if (!config.cuda_graphs) io.make_engine = launch->connect(*backend, config.identity_json().dump());
#endif
  Trainer trainer(config, *backend, io);
  const TrainResult r = trainer.run();
  if (r.outcome == TrainResult::Outcome::interrupted) return r.signal > 0 ? 128 + r.signal : 1;
  return 0;
}

int run(int argc, char** argv) {
  using namespace vitscale::train;
  const auto start = std::chrono::steady_clock::now();
  // First, so that a pre-emption during start-up is still honoured at the first step boundary.
  StopSignal stop = StopSignal::install();
  int exit_code = 0;
  const auto cl = parse_command_line(argc, argv, exit_code);
  if (!cl) return exit_code;
  const TrainOptions file = cl->config_path.empty() ? TrainOptions{} : load_config_file(cl->config_path);

#ifdef VITSCALE_TRAIN_DATA_PARALLEL
  vitscale::TrainLaunch launch(&argc, &argv);  // MPI when started by mpirun / srun
  const int world_size = launch.world_size(), rank = launch.rank();
  try {
    return train(*cl, file, stop, start, world_size, rank, launch.cuda_device(), &launch);
  } catch (const std::exception& e) {
    if (world_size == 1) throw;
    // Unwinding would reach MPI_Finalize (or a collective) that the other
    // ranks never enter: end the whole job now, this rank's error printed.
    launch.abort_after_error(error_text(e, rank));
  }
#else
  return train(*cl, file, stop, start, 1, 0, 0, nullptr);  // launch is not used without the engine
#endif
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << error_text(e, -1);
    return 1;
  }
}
