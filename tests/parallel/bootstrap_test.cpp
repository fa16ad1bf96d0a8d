// Bootstrap: rank, world and local rank from each launcher's variables; bad
// variables refused; mismatched configurations refused on every rank.
#include "parallel/bootstrap.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "fake_communicator.h"

#if VITSCALE_HAVE_MPI
#include <mpi.h>  // OMPI_MAJOR_VERSION: which MPI this build has
#endif

using namespace vitscale;

namespace {

EnvLookup env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

}  // namespace

TEST_CASE("no launcher variables: a single process", "[parallel][bootstrap]") {
  const LaunchInfo i = launch_info_from_env(env({}));
  CHECK(i.rank == 0);
  CHECK(i.world_size == 1);
  CHECK(i.local_rank == 0);
  CHECK(!i.mpi_launcher);
}

TEST_CASE("Open MPI's variables win over the others", "[parallel][bootstrap]") {
  const LaunchInfo i = launch_info_from_env(env({{"OMPI_COMM_WORLD_RANK", "3"},
                                                 {"OMPI_COMM_WORLD_SIZE", "4"},
                                                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                                 {"RANK", "0"},
                                                 {"WORLD_SIZE", "1"}}));
  CHECK(i.rank == 3);
  CHECK(i.world_size == 4);
  CHECK(i.local_rank == 1);
  CHECK(i.local_world_size == 2);
  CHECK(i.mpi_launcher);
  CHECK(i.source == "Open MPI");
}

TEST_CASE("srun's step variables, a batch script's allocation is not a world", "[parallel][bootstrap]") {
  const LaunchInfo i = launch_info_from_env(env({{"SLURM_PROCID", "5"},
                                                 {"SLURM_STEP_NUM_TASKS", "8"},
                                                 {"SLURM_LOCALID", "1"},
                                                 {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}}));
  CHECK(i.rank == 5);
  CHECK(i.world_size == 8);
  CHECK(i.local_rank == 1);
  CHECK(i.local_world_size == 4);
  CHECK(i.mpi_launcher);
  // sbatch sets SLURM_PROCID and SLURM_NTASKS but no step: one process.
  const LaunchInfo batch = launch_info_from_env(env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}}));
  CHECK(batch.world_size == 1);
}

TEST_CASE("torchrun-style variables", "[parallel][bootstrap]") {
  const LaunchInfo i =
      launch_info_from_env(env({{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "2"}}));
  CHECK(i.rank == 2);
  CHECK(i.world_size == 4);
  CHECK(i.local_world_size == 2);
  CHECK(!i.mpi_launcher);
  CHECK(i.describe() == "rank 2 of 4 (local 0 of 2, from RANK/WORLD_SIZE)");
}

TEST_CASE("malformed launcher variables are refused by name", "[parallel][bootstrap]") {
  CHECK_THROWS_WITH(launch_info_from_env(env({{"RANK", "x"}, {"WORLD_SIZE", "2"}})), Catch::Contains("RANK='x'"));
  CHECK_THROWS_WITH(launch_info_from_env(env({{"RANK", "1"}})), Catch::Contains("WORLD_SIZE"));
  CHECK_THROWS_WITH(launch_info_from_env(env({{"RANK", "4"}, {"WORLD_SIZE", "4"}})), Catch::Contains("outside"));
}

TEST_CASE("identical configurations pass the start-up check", "[parallel][bootstrap]") {
  testing::FakeCommunicator comm(1, 2);
  // The fake's peer (rank 0) contributes its hash of the same text: run the
  // check once to learn what this rank contributes, then mirror it.
  // Only the first all-reduce is the hash exchange; on a mismatch the
  // descriptions follow in two more, which the peer leaves alone.
  std::vector<double> mine;
  int calls = 0;
  comm.peers = [&](std::span<double> v) {
    if (calls++ == 0) mine.assign(v.begin(), v.end());
  };
  CHECK_THROWS(check_same_across_ranks(comm, "configuration", "ViT dim=32 batch=8"));  // peer sent zeros
  comm.peers = [&](std::span<double> v) {
    v[0] += mine[2];
    v[1] += mine[3];
  };
  CHECK_NOTHROW(check_same_across_ranks(comm, "configuration", "ViT dim=32 batch=8"));
}

TEST_CASE("a configuration that differs across ranks is refused naming the ranks", "[parallel][bootstrap]") {
  testing::FakeCommunicator comm(0, 3);
  int calls = 0;
  comm.peers = [&calls](std::span<double> v) {
    if (calls++ > 0) return;  // the descriptions' exchange that follows a mismatch
    v[2] = v[0];              // rank 1 agrees with rank 0
    v[3] = v[1];
    v[4] = 12345;  // rank 2 does not
    v[5] = 678;
  };
  CHECK_THROWS_WITH(check_same_across_ranks(comm, "model and batch configuration", "dim=32"),
                    Catch::Contains("rank 0: model and batch configuration differs across ranks: rank 2 disagrees") &&
                        Catch::Contains("dim=32"));
}

TEST_CASE("a configuration mismatch names each differing key with both values", "[parallel][bootstrap]") {
  const std::string rank0 = R"({"train_batch_size": 16, "model": {"dim": 32, "depth": 2}, "training": {"seed": 1}})";
  const std::string rank1 = R"({"train_batch_size": 8, "model": {"dim": 32, "depth": 4}})";
  const std::string d = json_difference(rank0, 0, rank1, 1);
  CHECK(d ==
        "model.depth: 2 on rank 0, 4 on rank 1; train_batch_size: 16 on rank 0, 8 on rank 1; "
        "training.seed: 1 on rank 0, absent on rank 1");
  CHECK(json_difference(rank0, 0, rank0, 2).empty());
  CHECK(json_difference("dim=32", 0, "dim=64", 1).empty());  // not JSON: the caller prints the text
  CHECK_THAT(json_difference(rank0, 0, rank1, 1, 1), Catch::Contains("and 2 more"));
}

TEST_CASE("srun without PMIx gets one line of advice before Open MPI's MPI_Init fails", "[parallel][bootstrap]") {
  const std::map<std::string, std::string> srun = {
      {"SLURM_STEP_ID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_MPI_TYPE", "pmi2"}};
#if defined(OMPI_MAJOR_VERSION)  // the advice is for Open MPI builds
  CHECK_THAT(srun_without_pmix_advice(env(srun)), Catch::Contains("--mpi=pmi2") && Catch::Contains("srun --mpi=pmix"));
  auto pmix = srun;
  pmix["PMIX_RANK"] = "0";
  CHECK(srun_without_pmix_advice(env(pmix)).empty());
  auto mpirun_in_allocation = srun;
  mpirun_in_allocation["OMPI_COMM_WORLD_SIZE"] = "2";
  CHECK(srun_without_pmix_advice(env(mpirun_in_allocation)).empty());
#endif
  CHECK(srun_without_pmix_advice(env({})).empty());  // not under srun
  CHECK(srun_without_pmix_advice(env({{"SLURM_MPI_TYPE", "none"}})).empty());
}
