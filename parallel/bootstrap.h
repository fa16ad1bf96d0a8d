// bootstrap.h — who am I, how many are we, and which engine connects us.
//
// One process per GPU (or per CPU rank), started by mpirun/mpiexec or srun.
// Rank, world size and local rank come from MPI when the process was started
// by an MPI launcher (local rank: the rank among processes sharing this node,
// MPI_Comm_split_type), otherwise from the environment: Open MPI's
// OMPI_COMM_WORLD_*, PMI_* (MPICH, Intel MPI), Slurm's srun variables, or
// torchrun-style RANK / WORLD_SIZE / LOCAL_RANK. The GPU is the local rank's.
// Collectives need a transport to meet over: a world larger than one needs MPI
// (the NCCL unique id is broadcast over it), so multi-node works the same way.
//
// Typical use (vit_train does this through train/data_parallel_engine.h):
//   Distributed dist(&argc, &argv);                  // MPI_Init when launched by MPI
//   auto backend = cpu ? make_cpu_backend(dist.cpu_threads())
//                      : make_cuda_backend(dist.cuda_device(), ...);
//   auto comm = dist.make_communicator(*backend);     // NCCL, MPI or local
//   check_same_across_ranks(*comm, "configuration", config_text);
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "parallel/comm_options.h"
#include "parallel/communicator.h"
#include "runtime/backend.h"

namespace vitscale {

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string source = "single process";  // which launcher or variables said so
  bool mpi_launcher = false;              // started by mpirun/mpiexec/srun: MPI can initialise
  std::string describe() const;           // "rank 1 of 4 (local 1 of 2, from Open MPI)"
};

using EnvLookup = std::function<const char*(const char*)>;
// Reads the launcher's variables; throws std::invalid_argument naming the
// variable when one is malformed or rank/size are inconsistent.
LaunchInfo launch_info_from_env(const EnvLookup& getenv);
LaunchInfo launch_info_from_env();  // the process environment

// MPI_Init_thread(MPI_THREAD_MULTIPLE) / MPI_Finalize, when MPI was compiled in.
// MULTIPLE: the communication thread runs collectives while the watchdog may
// call MPI_Abort and the main thread may broadcast the NCCL id.
class MpiSession {
 public:
  static bool compiled_in();
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  LaunchInfo launch_info() const;  // rank, size and local rank from MPI_COMM_WORLD
  int thread_level() const { return thread_level_; }

 private:
  bool owns_ = false;
  int thread_level_ = 0;
};

class Distributed {
 public:
  // Initialises MPI when the process was started by an MPI launcher (or
  // force_mpi); throws naming the variables when the environment asks for a
  // world larger than one that this build cannot connect.
  Distributed(int* argc, char*** argv, bool force_mpi = false);
  ~Distributed();

  const LaunchInfo& launch() const { return launch_; }
  int rank() const { return launch_.rank; }
  int world_size() const { return launch_.world_size; }
  bool uses_mpi() const { return mpi_.has_value(); }
  // The GPU for this process: its local rank (one process per GPU).
  int cuda_device() const { return launch_.local_rank; }
  // OpenMP threads for a CPU rank: the cores shared among this node's ranks
  // (at least 1), so 2 ranks on 2 cores compute with 1 thread each.
  int cpu_threads() const;

  // The engine for this backend and world: LocalCommunicator for one CPU rank,
  // MpiCommunicator for CPU ranks, NcclCommunicator on the GPU (any world size).
  std::unique_ptr<Communicator> make_communicator(Backend& backend, const CommOptions& options = {});

 private:
  std::optional<MpiSession> mpi_;
  LaunchInfo launch_;
};

// Refuses to start when ranks disagree: every rank hashes `description` (the
// model and batch configuration), the hashes are exchanged, and on any
// difference the descriptions themselves, and every rank throws
// std::runtime_error naming the ranks that differ from rank 0 and, when the
// descriptions are JSON objects, each differing key with both values (else
// this rank's description). Collective.
void check_same_across_ranks(Communicator& comm, const std::string& what, const std::string& description);

// "key: A on rank 0, B on rank 1; ..." for the leaves of two JSON objects that
// differ (a missing key reads "absent"), at most `max_keys` of them (then
// "and N more"); "" when either text is not a JSON object or nothing differs.
std::string json_difference(const std::string& a, int rank_a, const std::string& b, int rank_b, int max_keys = 8);

// When this process was started by an srun step without PMIx (Slurm's
// --mpi=pmi2 or none) and this build's MPI is Open MPI, which then fails in
// MPI_Init: the one line saying what to do; else "".
std::string srun_without_pmix_advice(const EnvLookup& getenv);

}  // namespace vitscale
