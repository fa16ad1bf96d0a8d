// Bad-input checks that must end the whole job, run by CTest under mpirun:
//   hang <timeout_s> [thread|polling|nonblocking]: rank 1 never joins an all_reduce;
//        the others' watchdog must abort the job naming the rank and the op.
//   died <timeout_s> [thread|polling|nonblocking]: rank 1 exits mid-run; nobody may
//        wait forever.
//   mismatch             : the last rank builds a wider model; every rank refuses
//                         to start, naming the rank that differs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "parallel/bootstrap.h"
#include "parallel/data_parallel.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu_backend.h"
#include "train_harness.h"

using namespace vitscale;

namespace {

int hang_or_die(Communicator& comm, bool die) {
  std::vector<float> data(1024, 1.f);  // 4096 bytes
  const TensorView v(data.data(), DType::f32, {1024});
  comm.all_reduce(v).wait();  // everyone joins the first one
  if (comm.rank() == 1) {
    if (die) std::_Exit(9);
    std::this_thread::sleep_for(std::chrono::seconds(30));  // never joins the second
    return 0;
  }
  comm.all_reduce(v).wait();
  std::fprintf(stderr, "rank %d: the second all_reduce completed, which it must not\n", comm.rank());
  return 1;
}

int mismatch(Communicator& comm) {
  CpuBackend backend(1);
  ViTConfig config = testing::tiny_vit();
  if (comm.rank() == comm.world_size() - 1) config.dim = 64;
  ViTModel model(config, backend, ModelShape{4, 0}, ImageNorm{});
  DataParallel dp(comm, model, DataParallelOptions{});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Distributed dist(&argc, &argv, /*force_mpi=*/true);
    const std::string mode = argc > 1 ? argv[1] : "";
    CommOptions options;
    options.timeout_s = argc > 2 ? std::atof(argv[2]) : 60.0;
    if (argc > 3) options.mpi_progress = parse_mpi_progress(argv[3]);
    MpiCommunicator comm(options);
    if (mode == "hang") return hang_or_die(comm, false);
    if (mode == "died") return hang_or_die(comm, true);
    if (mode == "mismatch") return mismatch(comm);
    std::fprintf(stderr, "usage: %s hang|died <timeout_s> [thread|polling|nonblocking] | mismatch\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
