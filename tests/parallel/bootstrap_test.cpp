// Bootstrap: rank, world and local rank from each launcher's variables; bad
// variables refused; mismatched configurations refused on every rank.
#include "parallel/bootstrap.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "fake_communicator.h"

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

TEST_CASE("srun's step variables; a batch script's allocation is not a world", "[parallel][bootstrap]") {
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
  std::vector<double> mine;
  comm.peers = [&](std::span<double> v) { mine.assign(v.begin(), v.end()); };
  CHECK_THROWS(check_same_across_ranks(comm, "configuration", "ViT dim=32 batch=8"));  // peer sent zeros
  comm.peers = [&](std::span<double> v) {
    v[0] += mine[2];
    v[1] += mine[3];
  };
  CHECK_NOTHROW(check_same_across_ranks(comm, "configuration", "ViT dim=32 batch=8"));
}

TEST_CASE("a configuration that differs across ranks is refused naming the ranks", "[parallel][bootstrap]") {
  testing::FakeCommunicator comm(0, 3);
  comm.peers = [](std::span<double> v) {
    v[2] = v[0];  // rank 1 agrees with rank 0
    v[3] = v[1];
    v[4] = 12345;  // rank 2 does not
    v[5] = 678;
  };
  CHECK_THROWS_WITH(check_same_across_ranks(comm, "model and batch configuration", "dim=32"),
                    Catch::Contains("rank 0: model and batch configuration differs across ranks: rank 2 disagrees") &&
                        Catch::Contains("dim=32"));
}
