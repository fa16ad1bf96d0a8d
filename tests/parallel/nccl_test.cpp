// The NCCL communicator at world size 1 on a real GPU: the same data-parallel
// code path as a multi-GPU run (comm stream, events, reducer, ZeRO-1), checked
// against plain single-GPU training. Skipped (tests/test_skip.h) without a
// GPU; CI only compiles it.
#include <catch2/catch.hpp>

#include "tests/test_skip.h"

#if VITSCALE_HAVE_NCCL && __has_include("runtime/cuda_backend.h")

#include <chrono>
#include <vector>

#include "mpi/train_harness.h"
#include "parallel/data_parallel.h"
#include "parallel/nccl_communicator.h"
#include "runtime/cuda_backend.h"
#include "tests/cuda_stream_gate.h"

using namespace vitscale;

namespace {

bool have_gpu() { return cuda_device_count() > 0; }

std::unique_ptr<NcclCommunicator> world_of_one(CudaBackend& backend) {
  CommOptions o;
  o.timeout_s = 60;
  return std::make_unique<NcclCommunicator>(0, 1, make_nccl_unique_id(), backend.device(), backend.compute_stream(), o);
}

}  // namespace

TEST_CASE("NCCL collectives at world size 1 on the GPU", "[parallel][nccl]") {
  if (!have_gpu()) VS_SKIP("no CUDA device: the NCCL test is compiled, not run");
  CudaBackend backend(0, DType::f32, false);
  auto comm = world_of_one(backend);
  const std::vector<float> host = {1, 2, 3, 4, 5, 6, 7, 8};
  Buffer a = backend.allocate(host.size() * 4, "a"), b = backend.allocate(host.size() * 4, "b");
  const TensorView va(a.get(), DType::f32, {8}), vb(b.get(), DType::f32, {8});
  backend.copy_to_device(a.get(), host.data(), host.size() * 4);
  backend.fill_zero(vb);
  comm->all_reduce(va).wait();
  const std::vector<std::int64_t> counts = {8};
  comm->reduce_scatter(va, vb, counts).wait();
  comm->all_gather(vb, counts).wait();
  comm->broadcast(vb, 0).wait();
  comm->barrier().wait();
  std::vector<float> out(8);
  backend.copy_to_host(out.data(), b.get(), 32);
  CHECK(out == host);
  std::vector<double> h = {2.5, -1.0};
  comm->all_reduce_host(h, HostReduce::sum);
  CHECK(h == std::vector<double>{2.5, -1.0});
}

// The defect the first GPU review found: a poll of a pending collective left
// cudaErrorNotReady as the thread's last error, and the next kernel's launch
// check threw it mid-backward.
TEST_CASE("polling a pending NCCL collective leaves no error for the next launch check", "[parallel][nccl]") {
  if (!have_gpu()) VS_SKIP("no CUDA device: the NCCL test is compiled, not run");
  CudaBackend backend(0, DType::f32, false);
  auto comm = world_of_one(backend);
  Buffer a = backend.allocate(64 * 4, "a");
  const TensorView va(a.get(), DType::f32, {64});
  backend.fill_zero(va);
  backend.synchronize();
  REQUIRE(cudaGetLastError() == cudaSuccess);
  {
    testing::StreamGate gate(backend.compute_stream());  // the collective waits on compute: pending
    CommRequest r = comm->all_reduce(va);
    CHECK_FALSE(r.test());
    CHECK_FALSE(r.test());
    CHECK(cudaGetLastError() == cudaSuccess);
    gate.open();
    r.wait();
    CHECK(r.test());
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  backend.fill_zero(va);  // a launch after the polls: its check must not see a stale status
  backend.synchronize();
}

// wait() orders the compute stream after the collective (cudaStreamWaitEvent)
// and returns: the host must not block on a collective the device has not run.
TEST_CASE("waiting on an NCCL collective orders the device and does not block the host", "[parallel][nccl]") {
  if (!have_gpu()) VS_SKIP("no CUDA device: the NCCL test is compiled, not run");
  CudaBackend backend(0, DType::f32, false);
  auto comm = world_of_one(backend);
  Buffer a = backend.allocate(64 * 4, "a");
  const TensorView va(a.get(), DType::f32, {64});
  std::vector<float> values(64);
  for (int i = 0; i < 64; ++i) values[static_cast<std::size_t>(i)] = 0.5f * static_cast<float>(i) - 3.f;
  backend.copy_to_device(a.get(), values.data(), 64 * 4);
  {
    testing::StreamGate gate(backend.compute_stream());  // nothing on the device can run yet
    CommRequest r = comm->all_reduce(va);
    const auto t0 = std::chrono::steady_clock::now();
    r.wait();  // the collective cannot have run: this must return anyway
    std::vector<CommRequest> more;
    more.push_back(comm->all_reduce(va));
    const double exposed = comm->wait_all(more);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);
    CHECK(r.busy_seconds() == 0.0);  // its events are pending: reported later, not waited for
    CHECK(exposed == 0.0);
    CHECK(cudaGetLastError() == cudaSuccess);
  }  // the gate opens; the compute stream runs, waiting on the collectives
  std::vector<float> back(64);
  backend.copy_to_host(back.data(), a.get(), 64 * 4);
  CHECK(back == values);  // a sum over one rank
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("data-parallel training through NCCL at world size 1 equals plain training", "[parallel][nccl]") {
  if (!have_gpu()) VS_SKIP("no CUDA device: the NCCL test is compiled, not run");
  for (int stage : {0, 1}) {
    CudaBackend backend(0, DType::f32, false);
    auto comm = world_of_one(backend);
    testing::RunShape s;
    s.micro_batch = 8;
    s.accumulation = 2;
    ViTModel model(testing::tiny_vit(), backend, ModelShape{s.micro_batch, 0}, ImageNorm{});
    model.init_parameters(5);
    DataParallelOptions o;
    o.zero_stage = stage;
    o.reducer.bucket_bytes = 8 * 1024;
    DataParallel dp(*comm, model, o);
    ViTModel ref(testing::tiny_vit(), backend, ModelShape{s.micro_batch, 0}, ImageNorm{});
    ref.init_parameters(5);
    AdamWOptimizer adamw(backend, ref.table());
    for (int step = 0; step < 3; ++step) {
      const CommTiming t = testing::data_parallel_step(model, dp, s, step);
      CHECK(t.buckets == static_cast<int>(dp.reducer().plan().buckets.size()));
      CHECK(t.reduce_s >= 0);
      dp.optimizer_step(testing::test_hyper(step + 1));
      ref.zero_grads();
      for (int i = 0; i < s.accumulation; ++i) {
        const auto b = testing::make_batch(ref.config(), step * s.global_batch() + i * s.micro_batch, s.micro_batch);
        ref.upload_batch(b.images.data(), b.targets.data(), s.micro_batch);
        ref.forward(1.f / static_cast<float>(s.global_batch()));
        ref.backward();
      }
      adamw.step(ref.params(), ref.grads(), testing::test_hyper(step + 1));
      ref.sync_compute_params();
    }
    INFO("zero stage " << stage);
    // read_params waits for ZeRO-1/2's all-gather, still in flight after the step (overlap_comm).
    std::vector<float> params(static_cast<std::size_t>(model.table().total_numel()));
    model.read_params(params);
    CHECK(testing::relative_error(params, testing::host_copy(backend, ref.params())) <= 1e-6);
  }
}

#else

TEST_CASE("NCCL communicator", "[parallel][nccl]") { VS_SKIP("built without NCCL: nothing to test"); }

#endif
