// The reducer driven by the real hand-written backward (CPU backend): each
// bucket is launched at the first ready signal that covers it, and the data it
// hands to the engine is already the final gradient, bit for bit. And world
// size 1 through DataParallel is exactly single-process training.
#include <catch2/catch.hpp>
#include <cstring>

#include "fake_communicator.h"
#include "mpi/train_harness.h"
#include "parallel/data_parallel.h"
#include "parallel/local_communicator.h"
#include "runtime/cpu_backend.h"

using namespace vitscale;
using vitscale::testing::FakeCall;
using vitscale::testing::FakeCommunicator;

namespace {

// Records the watermark before passing each signal on.
class WatermarkProbe final : public GradReadyListener {
 public:
  WatermarkProbe(GradReducer& r, std::int64_t& w) : reducer_(r), watermark_(w) {}
  void grads_ready_from(std::int64_t offset) override {
    watermark_ = offset;
    seen.push_back(offset);
    reducer_.grads_ready_from(offset);
  }
  std::vector<std::int64_t> seen;

 private:
  GradReducer& reducer_;
  std::int64_t& watermark_;
};

}  // namespace

TEST_CASE("the real backward launches each bucket when it is final, with final data", "[parallel][reducer]") {
  CpuBackend backend(1);
  ViTModel model(testing::tiny_vit(), backend, ModelShape{4, 0}, ImageNorm{});
  model.init_parameters(7);
  const testing::SyntheticBatch batch = testing::make_batch(model.config(), 0, 4);
  std::int64_t watermark = -1;
  FakeCommunicator comm(0, 2);
  comm.base = static_cast<const float*>(model.grads().data);
  comm.watermark = &watermark;
  comm.snapshot = true;
  GradReducer reducer(comm, model.table(), model.grads(), ReducerOptions{4096, 0, true});
  WatermarkProbe probe(reducer, watermark);

  model.zero_grads();
  // Two accumulation micro-steps: silent; then the final one.
  for (int micro = 0; micro < 3; ++micro) {
    reducer.begin_step(micro == 2);
    model.upload_batch(batch.images.data(), batch.targets.data(), 4);
    model.forward(1.f / 12.f);
    model.backward(&probe);
    if (micro < 2) CHECK(comm.calls.empty());
  }
  const auto& buckets = reducer.plan().buckets;
  REQUIRE(comm.calls.size() == buckets.size());  // all launched inside backward
  const float* g = static_cast<const float*>(model.grads().data);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const FakeCall& c = comm.calls[i];
    // Launched at the first signal at or below the bucket's start: as soon as ready.
    std::int64_t first_ready = -1;
    for (std::int64_t w : std::vector<std::int64_t>(
             probe.seen.end() - static_cast<std::ptrdiff_t>(probe.seen.size() / 3), probe.seen.end()))
      if (w <= buckets[i].begin) {
        first_ready = w;
        break;
      }
    CHECK(c.watermark == first_ready);
    // What the engine was handed is what backward finally left there.
    REQUIRE(c.snapshot.size() == static_cast<std::size_t>(buckets[i].count));
    CHECK(std::memcmp(c.snapshot.data(), g + buckets[i].begin, c.snapshot.size() * sizeof(float)) == 0);
  }
  reducer.finish();
  CHECK(comm.pending == 0);
}

TEST_CASE("world size 1 through DataParallel is exactly single-process training", "[parallel][local]") {
  struct Case {
    int stage, accumulation;
    bool every_micro_step;
  };
  // ZeRO-2/3 with the gradient window (k = 1) and ZeRO-3's gathers compute the
  // same ops on the same values: bit for bit. Reducing every micro-step adds
  // the micro-steps' sums in another order: to 1e-6.
  for (const Case c : {Case{0, 2, false}, Case{1, 2, false}, Case{2, 2, false}, Case{2, 1, false}, Case{3, 1, false},
                       Case{3, 2, false}, Case{2, 2, true}, Case{3, 2, true}}) {
    CpuBackend backend(1);
    testing::RunShape s;
    s.micro_batch = 4;
    s.accumulation = c.accumulation;
    LocalCommunicator comm(backend);
    ModelShape shape{s.micro_batch, 0};
    shape.resident_gradients = !(c.stage >= 2 && (c.accumulation == 1 || c.every_micro_step));
    shape.resident_params = c.stage < 3;
    ViTModel model(testing::tiny_vit(), backend, shape, ImageNorm{});
    DataParallelOptions o;
    o.zero_stage = c.stage;
    o.reducer.bucket_bytes = 2048;
    o.reduce_every_micro_step = c.every_micro_step;
    o.zero3.persistence_threshold = 0;
    DataParallel dp(comm, model, o);
    model.init_parameters(11);
    // The reference accumulates the same micro-batches with plain AdamW.
    ViTModel ref(testing::tiny_vit(), backend, ModelShape{s.micro_batch, 0}, ImageNorm{});
    ref.init_parameters(11);
    AdamWOptimizer adamw(backend, ref.table());
    for (int step = 0; step < 3; ++step) {
      const CommTiming t = testing::data_parallel_step(model, dp, s, step);
      CHECK(t.overlap_ratio() == 0.0);  // nothing to hide at world size 1
      dp.optimizer_step(testing::test_hyper(step + 1));
      ref.zero_grads();
      for (int i = 0; i < s.accumulation; ++i) {
        const auto b = testing::make_batch(ref.config(), step * s.global_batch() + i * s.micro_batch, s.micro_batch);
        ref.upload_batch(b.images.data(), b.targets.data(), s.micro_batch);
        ref.forward(1.f / static_cast<float>(s.global_batch()));
        ref.backward();
      }
      adamw.step(ref.params(), ref.grads(), testing::test_hyper(step + 1));
    }
    std::vector<float> a(static_cast<std::size_t>(model.table().total_numel()));
    model.read_params(a);
    const auto b = testing::host_copy(backend, ref.params());
    INFO("zero stage " << c.stage << ", k=" << c.accumulation << (c.every_micro_step ? ", every micro-step" : ""));
    if (c.every_micro_step)
      CHECK(testing::relative_error(a, b) <= 1e-6);
    else
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("the local communicator: identities, and reduce_scatter as a copy", "[parallel][local]") {
  CpuBackend backend(1);
  LocalCommunicator comm(backend);
  std::vector<float> a = {1, 2, 3}, b(3, 0.f);
  const TensorView va(a.data(), DType::f32, {3}), vb(b.data(), DType::f32, {3});
  CommRequest r = comm.all_reduce(va);
  CHECK(r.test());
  CHECK(a == std::vector<float>{1, 2, 3});
  const std::vector<std::int64_t> counts = {3};
  comm.reduce_scatter(va, vb, counts).wait();
  CHECK(b == a);
  comm.all_gather(va, counts).wait();
  comm.broadcast(va, 0).wait();
  comm.barrier().wait();
  CHECK_THROWS_WITH(comm.broadcast(va, 1), Catch::Contains("root 1"));
  const std::vector<std::int64_t> bad = {2};
  CHECK_THROWS_WITH(comm.all_gather(va, bad), Catch::Contains("counts sum to 2"));
  std::vector<double> h = {4.0};
  comm.all_reduce_host(h, HostReduce::sum);
  CHECK(h[0] == 4.0);
}
