// zero1_gather_test.cpp — ZeRO-1's parameter all-gather honours DeepSpeed's
// zero_optimization.allgather_bucket_size: pieces of at most that many
// elements, in order, covering the flat buffer once, each with the ranks'
// shares of it.
#include <catch2/catch.hpp>

#include <vector>

#include "fake_communicator.h"
#include "mpi/train_harness.h"
#include "parallel/zero1.h"
#include "runtime/cpu_backend.h"
#include "runtime/param_table.h"

using namespace vitscale;
using vitscale::testing::FakeCall;
using vitscale::testing::FakeCommunicator;

TEST_CASE("ZeRO-1 all-gathers the parameters in pieces of at most allgather_bucket_size", "[parallel][zero1]") {
  CpuBackend backend(1);
  const ParamTable table(vitscale::testing::tiny_vit());
  const std::int64_t n = table.total_numel();
  std::vector<float> params(static_cast<std::size_t>(n), 0.25f);
  const TensorView view(params.data(), DType::f32, {n});
  for (const std::int64_t bucket : {n, n + 1000, n / 3 + 1, std::int64_t{1000}}) {
    INFO("allgather_bucket_size " << bucket << " of " << n << " parameters");
    FakeCommunicator comm(1, 3);
    comm.base = params.data();
    Zero1Optimizer zero1(comm, backend, table, bucket);
    zero1.step(view, AdamWHyper{});
    std::vector<FakeCall> gathers;
    for (const FakeCall& c : comm.calls)
      if (c.op == CommOp::all_gather) gathers.push_back(c);
    CHECK(gathers.size() == static_cast<std::size_t>((n + bucket - 1) / bucket));
    CHECK(zero1.gather_pieces().size() == gathers.size());
    std::int64_t at = 0;
    for (const FakeCall& g : gathers) {
      CHECK(g.offset == at);
      CHECK(g.count <= bucket);
      CHECK(g.counts == zero1.layout().split(at, g.count));
      at += g.count;
    }
    CHECK(at == n);
    CHECK(comm.pending == 0);  // every piece was waited for
  }
  FakeCommunicator comm(0, 2);
  CHECK_THROWS_WITH(Zero1Optimizer(comm, backend, table, 0),
                    Catch::Contains("allgather_bucket_size must be at least 1"));
}
