// vit_train's data-parallel step engine: config keys mapped as DeepSpeed means
// them, environment knobs parsed or refused, and at world size 1 the engine
// trains exactly like the trainer's own single-process engine.
#include "train/data_parallel_engine.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>

#include "mpi/train_harness.h"
#include "parallel/local_communicator.h"
#include "runtime/cpu_backend.h"

using namespace vitscale;

TEST_CASE("DeepSpeed's reduce_bucket_size counts elements, the reducer counts bytes", "[parallel][engine]") {
  train::TrainConfig c;
  c.reduce_bucket_size = 1000;
  c.overlap_comm = false;
  c.zero_stage = 1;
  const DataParallelOptions o = data_parallel_options(c);
  CHECK(o.reducer.bucket_bytes == 4000);
  CHECK(!o.reducer.overlap_comm);
  CHECK(o.zero_stage == 1);
  c.reduce_bucket_size = 0;
  CHECK_THROWS_WITH(data_parallel_options(c), Catch::Contains("reduce_bucket_size"));
}

TEST_CASE("communication knobs come from the environment, and bad ones are refused", "[parallel][engine]") {
  ::setenv("VITSCALE_COMM_TIMEOUT_S", "12.5", 1);
  ::setenv("VITSCALE_MPI_PROGRESS", "polling", 1);
  ::setenv("VITSCALE_MPI_POLL_US", "200", 1);
  const CommOptions o = comm_options_from_env();
  CHECK(o.timeout_s == 12.5);
  CHECK(o.mpi_progress == MpiProgress::polling_thread);
  CHECK(o.mpi_poll_us == 200);
  ::setenv("VITSCALE_MPI_PROGRESS", "spin", 1);
  CHECK_THROWS_WITH(comm_options_from_env(), Catch::Contains("'spin'"));
  ::unsetenv("VITSCALE_MPI_PROGRESS");
  ::setenv("VITSCALE_COMM_TIMEOUT_S", "soon", 1);
  CHECK_THROWS_WITH(comm_options_from_env(), Catch::Contains("VITSCALE_COMM_TIMEOUT_S='soon'"));
  ::unsetenv("VITSCALE_COMM_TIMEOUT_S");
  ::unsetenv("VITSCALE_MPI_POLL_US");
}

TEST_CASE("at world size 1 the data-parallel engine trains like the local engine", "[parallel][engine]") {
  CpuBackend backend(1);
  LocalCommunicator comm(backend);
  ViTModel a(testing::tiny_vit(), backend, ModelShape{4, 0}, ImageNorm{});
  ViTModel b(testing::tiny_vit(), backend, ModelShape{4, 0}, ImageNorm{});
  a.init_parameters(3);
  b.init_parameters(3);
  train::TrainConfig c;
  c.reduce_bucket_size = 500;
  DataParallelEngine dp(comm, a, data_parallel_options(c));
  // The trainer's own world-size-1 engine, re-created here: plain AdamW.
  AdamWOptimizer adamw(backend, b.table());
  CHECK(dp.world_size() == 1);
  CHECK(dp.describe().find('\n') == std::string::npos);
  for (int step = 0; step < 2; ++step) {
    const auto batch = testing::make_batch(a.config(), step * 8, 4);
    for (ViTModel* m : {&a, &b}) {
      m->zero_grads();
      m->upload_batch(batch.images.data(), batch.targets.data(), 4);
      m->forward(0.25f);
    }
    dp.begin_micro_step(true);
    a.backward(dp.listener());
    CHECK(dp.finish() >= 0);
    CHECK(dp.optimizer_step(testing::test_hyper(step + 1)) == 0);
    b.backward();
    adamw.step(b.params(), b.grads(), testing::test_hyper(step + 1));
  }
  const auto pa = testing::host_copy(backend, a.params()), pb = testing::host_copy(backend, b.params());
  CHECK(std::memcmp(pa.data(), pb.data(), pa.size() * 4) == 0);
  CHECK(dp.grad_norm() == adamw.read_grad_norm());
  std::vector<double> sums = {1.5};
  dp.all_reduce_sum(sums);
  CHECK(sums[0] == 1.5);
}
