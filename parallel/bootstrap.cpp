#include "parallel/bootstrap.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parallel/local_communicator.h"

#if VITSCALE_HAVE_MPI
#include <mpi.h>

#include "parallel/mpi_communicator.h"
#endif
#if VITSCALE_HAVE_NCCL
#include "parallel/nccl_communicator.h"
#if __has_include("runtime/cuda_backend.h")
#include "runtime/cuda_backend.h"
#define VITSCALE_PARALLEL_CUDA_BACKEND 1
#endif
#endif

namespace vitscale {

std::string LaunchInfo::describe() const {
  std::ostringstream s;
  s << "rank " << rank << " of " << world_size << " (local " << local_rank << " of " << local_world_size << ", from "
    << source << ")";
  return s.str();
}

namespace {

// A non-negative integer variable; its leading digits for Slurm's "4(x2)" forms.
std::optional<int> read_int(const EnvLookup& getenv, const char* name, bool leading_digits = false) {
  const char* v = getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || n < 0 || n > (1 << 24) || (!leading_digits && *end != '\0'))
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + v +
                                "' is not a non-negative integer");
  return static_cast<int>(n);
}

struct Scheme {
  const char *rank, *size, *local_rank, *local_size, *source;
  bool mpi;
  bool keyed_by_size;  // the scheme applies only when its size variable is set
};

}  // namespace

LaunchInfo launch_info_from_env(const EnvLookup& getenv) {
  // First match wins: an MPI launcher's own variables are the most specific;
  // Slurm's are read only inside an srun step (SLURM_STEP_NUM_TASKS), not in
  // the batch script, whose SLURM_NTASKS describes the whole allocation.
  static constexpr Scheme kSchemes[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
       "Open MPI", true, false},
      {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "PMI (MPICH / Intel MPI)", true, false},
      {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE", "Slurm srun", true, true},
      {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "RANK/WORLD_SIZE", false, false},
  };
  for (const Scheme& s : kSchemes) {
    const auto rank = read_int(getenv, s.rank), size = read_int(getenv, s.size);
    if ((!rank && !size) || (s.keyed_by_size && !size)) continue;
    if (!rank || !size)
      throw std::invalid_argument(std::string("the environment sets ") + (rank ? s.rank : s.size) + " but not " +
                                  (rank ? s.size : s.rank));
    LaunchInfo info;
    info.rank = *rank;
    info.world_size = *size;
    info.local_rank = read_int(getenv, s.local_rank).value_or(0);
    info.local_world_size = read_int(getenv, s.local_size, true).value_or(info.world_size);
    info.source = s.source;
    info.mpi_launcher = s.mpi;
    if (info.world_size < 1 || info.rank >= info.world_size)
      throw std::invalid_argument(std::string(s.rank) + "=" + std::to_string(info.rank) + " is outside " + s.size +
                                  "=" + std::to_string(info.world_size));
    if (info.local_world_size < 1 || info.local_rank >= info.local_world_size)
      info.local_world_size = info.local_rank + 1;
    return info;
  }
  return LaunchInfo{};
}

LaunchInfo launch_info_from_env() {
  return launch_info_from_env([](const char* n) { return std::getenv(n); });
}

// ---- MPI session ---------------------------------------------------------------

#if VITSCALE_HAVE_MPI
bool MpiSession::compiled_in() { return true; }

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_); rc != MPI_SUCCESS)
      throw std::runtime_error("MPI_Init_thread failed with code " + std::to_string(rc));
    owns_ = true;
  } else {
    MPI_Query_thread(&thread_level_);
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

LaunchInfo MpiSession::launch_info() const {
  LaunchInfo info;
  MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &info.world_size);
  // The ranks that share this node's memory: their order gives the local rank.
  MPI_Comm node = MPI_COMM_NULL;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
    throw std::runtime_error("rank " + std::to_string(info.rank) + ": MPI_Comm_split_type (node ranks) failed");
  MPI_Comm_rank(node, &info.local_rank);
  MPI_Comm_size(node, &info.local_world_size);
  MPI_Comm_free(&node);
  info.source = "MPI";
  info.mpi_launcher = true;
  return info;
}
#else
bool MpiSession::compiled_in() { return false; }
MpiSession::MpiSession(int*, char***) { throw std::logic_error("this build of vitscale has no MPI"); }
MpiSession::~MpiSession() = default;
LaunchInfo MpiSession::launch_info() const { return {}; }
#endif

// ---- Distributed -------------------------------------------------------------------

Distributed::Distributed(int* argc, char*** argv, bool force_mpi) {
  const LaunchInfo env = launch_info_from_env();
  if (MpiSession::compiled_in() && (env.mpi_launcher || force_mpi)) {
    // Open MPI prints pages and aborts inside MPI_Init when srun gave it no
    // PMIx: say first, in one line, what fixes it.
    const std::string advice = srun_without_pmix_advice([](const char* n) { return std::getenv(n); });
    if (!advice.empty() && env.rank == 0) std::fprintf(stderr, "vitscale: %s\n", advice.c_str());
    try {
      mpi_.emplace(argc, argv);
    } catch (const std::exception& e) {
      if (advice.empty()) throw;
      throw std::runtime_error(std::string(e.what()) + ": " + advice);
    }
    launch_ = mpi_->launch_info();
    launch_.source = "MPI, " + env.source;
    return;
  }
  if (env.world_size > 1) {
    throw std::invalid_argument(env.source + " asks for world size " + std::to_string(env.world_size) + ", but " +
                                (MpiSession::compiled_in()
                                     ? std::string("this process was not started by an MPI launcher")
                                     : std::string("this build of vitscale has no MPI")) +
                                "; start every rank with mpirun -np N or srun (the collectives bootstrap over MPI)");
  }
  launch_ = env;
}

Distributed::~Distributed() = default;

int Distributed::cpu_threads() const {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, launch_.local_world_size));
}

std::unique_ptr<Communicator> Distributed::make_communicator(Backend& backend, const CommOptions& options) {
  const int rank = launch_.rank, world = launch_.world_size;
  if (backend.kind() == DeviceKind::cuda) {
#if VITSCALE_PARALLEL_CUDA_BACKEND
    auto* cuda = dynamic_cast<CudaBackend*>(&backend);
    if (!cuda) throw std::logic_error("rank " + std::to_string(rank) + ": a cuda backend that is not a CudaBackend");
    NcclUniqueIdBytes id{};
    if (rank == 0) id = make_nccl_unique_id();
    if (world > 1) {
#if VITSCALE_HAVE_MPI
      if (!mpi_) throw std::logic_error("rank " + std::to_string(rank) + ": NCCL bootstrap needs MPI");
      if (const int rc = MPI_Bcast(id.data(), static_cast<int>(id.size()), MPI_BYTE, 0, MPI_COMM_WORLD);
          rc != MPI_SUCCESS)
        throw std::runtime_error("rank " + std::to_string(rank) + ": MPI_Bcast of the NCCL unique id (" +
                                 std::to_string(id.size()) + " bytes) failed with code " + std::to_string(rc));
#endif
    }
    return std::make_unique<NcclCommunicator>(rank, world, id, cuda->device(), cuda->compute_stream(), options);
#else
    throw std::runtime_error("rank " + std::to_string(rank) +
                             ": this build of vitscale has no NCCL communicator for the cuda backend");
#endif
  }
  if (world == 1) return std::make_unique<LocalCommunicator>(backend);
#if VITSCALE_HAVE_MPI
  return std::make_unique<MpiCommunicator>(options);
#else
  throw std::runtime_error("world size " + std::to_string(world) + " on the cpu needs MPI");
#endif
}

// ---- start-up agreement ----------------------------------------------------------

namespace {

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Every rank's text, by two sums: the lengths, then the bytes (as exact
// doubles), each rank filling only its own slots. Start-up only: a few KiB.
std::vector<std::string> exchange_texts(Communicator& comm, const std::string& mine) {
  const auto world = static_cast<std::size_t>(comm.world_size()), me = static_cast<std::size_t>(comm.rank());
  constexpr std::size_t kMaxText = 1 << 16;
  std::vector<double> lengths(world, 0.0);
  lengths[me] = static_cast<double>(std::min(mine.size(), kMaxText));
  comm.all_reduce_host(lengths, HostReduce::sum);
  std::size_t longest = 0;
  for (double l : lengths) longest = std::max(longest, std::min(kMaxText, static_cast<std::size_t>(std::max(0.0, l))));
  std::vector<double> bytes(world * longest, 0.0);
  for (std::size_t i = 0; i < std::min(mine.size(), longest); ++i)
    bytes[me * longest + i] = static_cast<unsigned char>(mine[i]);
  comm.all_reduce_host(bytes, HostReduce::sum);
  std::vector<std::string> texts(world);
  for (std::size_t r = 0; r < world; ++r) {
    const std::size_t n = std::min(longest, static_cast<std::size_t>(std::max(0.0, lengths[r])));
    for (std::size_t i = 0; i < n; ++i) texts[r] += static_cast<char>(static_cast<int>(bytes[r * longest + i]) & 0xff);
  }
  return texts;
}

}  // namespace

std::string json_difference(const std::string& a, int rank_a, const std::string& b, int rank_b, int max_keys) {
  const auto ja = nlohmann::json::parse(a, nullptr, false), jb = nlohmann::json::parse(b, nullptr, false);
  if (!ja.is_object() || !jb.is_object()) return "";
  const auto fa = ja.flatten(), fb = jb.flatten();
  std::set<std::string> keys;
  for (auto it = fa.begin(); it != fa.end(); ++it) keys.insert(it.key());
  for (auto it = fb.begin(); it != fb.end(); ++it) keys.insert(it.key());
  // "/training/seed" -> "training.seed", as the config keys are written.
  auto dotted = [](std::string k) {
    if (!k.empty() && k[0] == '/') k.erase(0, 1);
    std::replace(k.begin(), k.end(), '/', '.');
    return k;
  };
  auto value = [](const nlohmann::json& flat, const std::string& k) {
    return flat.contains(k) ? flat.at(k).dump() : std::string("absent");
  };
  std::string out;
  int listed = 0, more = 0;
  for (const std::string& k : keys) {
    if (fa.contains(k) && fb.contains(k) && fa.at(k) == fb.at(k)) continue;
    if (listed == max_keys) {
      ++more;
      continue;
    }
    out += (listed++ ? "; " : "") + dotted(k) + ": " + value(fa, k) + " on rank " + std::to_string(rank_a) + ", " +
           value(fb, k) + " on rank " + std::to_string(rank_b);
  }
  if (more) out += "; and " + std::to_string(more) + " more";
  return out;
}

std::string srun_without_pmix_advice(const EnvLookup& getenv) {
#if defined(OMPI_MAJOR_VERSION)
  const bool srun_step = getenv("SLURM_STEP_ID") && getenv("SLURM_STEP_NUM_TASKS");
  const bool other_launcher = getenv("OMPI_COMM_WORLD_SIZE") != nullptr;  // mpirun inside an allocation
  const bool pmix = getenv("PMIX_RANK") || getenv("PMIX_NAMESPACE");
  if (srun_step && !other_launcher && !pmix) {
    const char* type = getenv("SLURM_MPI_TYPE");
    return std::string("started by srun without PMIx (--mpi=") + (type && *type ? type : "none") +
           "); this Open MPI initialises only through PMIx: use 'srun --mpi=pmix' (or MpiDefault=pmix in slurm.conf)";
  }
#else
  (void)getenv;
#endif
  return "";
}

void check_same_across_ranks(Communicator& comm, const std::string& what, const std::string& description) {
  const int world = comm.world_size(), me = comm.rank();
  if (world == 1) return;
  // Everyone's hash, as two exact 32-bit halves per rank, by a sum of
  // vectors that are zero outside each rank's own slots.
  const std::uint64_t h = fnv1a(description);
  std::vector<double> hashes(2 * static_cast<std::size_t>(world), 0.0);
  hashes[2 * static_cast<std::size_t>(me)] = static_cast<double>(h >> 32);
  hashes[2 * static_cast<std::size_t>(me) + 1] = static_cast<double>(h & 0xffffffffu);
  comm.all_reduce_host(hashes, HostReduce::sum);
  std::vector<int> differ;
  for (int r = 1; r < world; ++r)
    if (hashes[2 * static_cast<std::size_t>(r)] != hashes[0] ||
        hashes[2 * static_cast<std::size_t>(r) + 1] != hashes[1])
      differ.push_back(r);
  if (differ.empty()) return;
  // Everyone's description, so that every rank can name what differs.
  const std::vector<std::string> all = exchange_texts(comm, description);
  std::string keys;
  for (int r : differ) {
    const std::string d = json_difference(all[0], 0, all[static_cast<std::size_t>(r)], r);
    if (!d.empty()) keys += (keys.empty() ? "" : "; ") + d;
  }
  std::ostringstream s;
  s << "rank " << me << ": " << what << " differs across ranks: rank" << (differ.size() > 1 ? "s" : "");
  for (std::size_t i = 0; i < differ.size(); ++i) s << (i ? ", " : " ") << differ[i];
  s << " disagree" << (differ.size() > 1 ? "" : "s") << " with rank 0";
  if (!keys.empty())
    s << " (" << keys << "); refusing to start";
  else
    s << "; refusing to start. This rank's " << what << ": " << description;
  throw std::runtime_error(s.str());
}

}  // namespace vitscale
