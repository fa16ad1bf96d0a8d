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
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include "train/device.h"
#include "train/signals.h"
#include "train/train_config.h"
#include "train/trainer.h"

#ifdef VITSCALE_TRAIN_DATA_PARALLEL
#include "parallel/train_engine.h"
#endif

namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Each line of a ConfigError (one problem per line) as its own "vit_train: error: ..." line.
void print_errors(const std::string& message) {
  std::size_t begin = 0;
  do {
    const std::size_t end = std::min(message.find('\n', begin), message.size());
    std::string line = message.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::cerr << "vit_train: error: " << line << "\n";
    begin = end + 1;
  } while (begin < message.size());
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
  const int world_size = launch.world_size(), rank = launch.rank(), cuda_device = launch.cuda_device();
#else
  const int world_size = 1, rank = 0, cuda_device = 0;
#endif
  TrainConfig config = resolve(file, cl->options, world_size);
  if (cl->print_config) {
    if (rank == 0) {
      std::cout << config.to_json().dump(2) << "\n";
      for (const std::string& note : config_notes(config)) std::cerr << "vit_train: " << note << "\n";
    }
    return 0;
  }
#ifdef VITSCALE_TRAIN_DATA_PARALLEL
  // CPU ranks sharing a node share its cores unless --threads says otherwise.
  if (config.threads == 0 && world_size > 1) config.threads = launch.cpu_threads();
#endif
  const auto backend = make_backend(config, cuda_device);
  TrainerIo io;
  io.console = &std::cout;
  io.stop = &stop;
  io.start = start;
  io.rank = rank;
#ifdef VITSCALE_TRAIN_DATA_PARALLEL
  // --cuda-graphs (world size 1 only) keeps the plain single-process engine:
  // no communicator callbacks or host-timed collectives inside captured phases.
  if (!config.cuda_graphs) io.make_engine = launch.connect(*backend, config.identity_json().dump());
#endif
  Trainer trainer(config, *backend, io);
  const TrainResult r = trainer.run();
  if (r.outcome == TrainResult::Outcome::interrupted) return r.signal > 0 ? 128 + r.signal : 1;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const vitscale::train::ConfigError& e) {
    std::cout.flush();
    print_errors(e.what());
    return 1;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "vit_train: error: " << one_line(e.what()) << "\n";
    return 1;
  }
}
