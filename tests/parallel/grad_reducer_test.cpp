// The reducer against a fake communicator: buckets launch in order, the moment
// they are ready and never before; nothing on non-final micro-steps;
// overlap_comm=false waits for finish(); finish() leaves nothing in flight.
#include "parallel/grad_reducer.h"

#include <catch2/catch.hpp>
#include <vector>

#include "runtime/backend.h"

#include "fake_communicator.h"

using namespace vitscale;
using vitscale::testing::FakeCall;
using vitscale::testing::FakeCommunicator;

namespace {

ViTConfig tiny() {
  ViTConfig c;
  c.image_size = 8;
  c.channels = 3;
  c.patch_size = 4;
  c.dim = 32;
  c.depth = 3;
  c.heads = 2;
  c.mlp_dim = 64;
  c.num_classes = 10;
  return c;
}

// The watermarks ViTModel::backward reports, in its order.
std::vector<std::int64_t> backward_watermarks(const ParamTable& t) {
  std::vector<std::int64_t> w;
  w.push_back(t.params()[static_cast<std::size_t>(t.head_w)].offset);
  w.push_back(t.params()[static_cast<std::size_t>(t.norm_w)].offset);
  for (int l = static_cast<int>(t.blocks.size()) - 1; l >= 0; --l)
    w.push_back(t.params()[static_cast<std::size_t>(t.blocks[static_cast<std::size_t>(l)].norm1_w)].offset);
  w.push_back(0);
  return w;
}

struct Fixture {
  ParamTable table{tiny()};
  std::vector<float> grads = std::vector<float>(static_cast<std::size_t>(table.total_numel()), 1.f);
  TensorView grad_view{grads.data(), DType::f32, {table.total_numel()}};
  std::int64_t watermark = 0;
  FakeCommunicator comm{0, 2};

  Fixture() {
    comm.base = grads.data();
    comm.watermark = &watermark;
  }
  // One backward: advances the watermark and tells the reducer, checking after
  // each signal that exactly the ready buckets have been launched.
  void backward(GradReducer& reducer, bool expect_launches) {
    watermark = table.total_numel();
    for (std::int64_t w : backward_watermarks(table)) {
      watermark = w;
      reducer.grads_ready_from(w);
      int ready = 0;
      for (const Bucket& b : reducer.plan().buckets) ready += b.begin >= w ? 1 : 0;
      CHECK(reducer.launched() == (expect_launches ? ready : 0));
    }
  }
};

}  // namespace

TEST_CASE("buckets launch in reverse order as soon as backward finishes them, never before", "[parallel][reducer]") {
  for (std::size_t cap : {std::size_t{1}, std::size_t{8192}, std::size_t{1} << 30}) {
    Fixture f;
    GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{cap, 0, true});
    reducer.begin_step(true);
    f.backward(reducer, true);
    REQUIRE(f.comm.calls.size() == reducer.plan().buckets.size());
    for (std::size_t i = 0; i < f.comm.calls.size(); ++i) {
      const FakeCall& c = f.comm.calls[i];
      const Bucket& b = reducer.plan().buckets[i];
      CHECK(c.op == CommOp::all_reduce);
      CHECK(c.offset == b.begin);
      CHECK(c.count == b.count);
      CHECK(c.watermark <= b.begin);  // its last gradient was final
    }
    const CommTiming t = reducer.finish();
    CHECK(f.comm.pending == 0);
    CHECK(reducer.launched() == 0);
    CHECK(t.buckets == static_cast<int>(reducer.plan().buckets.size()));
    CHECK(t.bytes == static_cast<std::size_t>(f.table.total_numel()) * 4);
    CHECK(t.reduce_s == Approx(1e-3 * t.buckets));
  }
}

TEST_CASE("non-final micro-steps communicate nothing, the final one reduces everything", "[parallel][reducer]") {
  Fixture f;
  GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{4096, 0, true});
  for (int micro = 0; micro < 3; ++micro) {
    reducer.begin_step(false);
    f.backward(reducer, false);
    const CommTiming t = reducer.finish();  // allowed, and a no-op
    CHECK(t.buckets == 0);
    CHECK(f.comm.calls.empty());
  }
  reducer.begin_step(true);
  f.backward(reducer, true);
  reducer.finish();
  CHECK(f.comm.calls.size() == reducer.plan().buckets.size());
  CHECK(f.comm.pending == 0);
}

TEST_CASE("overlap_comm=false launches nothing until finish()", "[parallel][reducer]") {
  Fixture f;
  GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{4096, 0, false});
  reducer.begin_step(true);
  f.backward(reducer, false);
  CHECK(f.comm.calls.empty());
  f.watermark = -1;  // finish() comes after backward
  const CommTiming t = reducer.finish();
  CHECK(!t.overlapped);
  REQUIRE(f.comm.calls.size() == reducer.plan().buckets.size());
  for (std::size_t i = 0; i < f.comm.calls.size(); ++i)
    CHECK(f.comm.calls[i].offset == reducer.plan().buckets[i].begin);
  CHECK(f.comm.pending == 0);
}

TEST_CASE("finish() waits even for requests the engine has not completed on test()", "[parallel][reducer]") {
  Fixture f;
  f.comm.complete_on_test = false;
  GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{4096, 0, true});
  reducer.begin_step(true);
  f.backward(reducer, true);
  CHECK(reducer.in_flight() == static_cast<int>(reducer.plan().buckets.size()));
  reducer.finish();
  CHECK(f.comm.pending == 0);
  CHECK(reducer.in_flight() == 0);
}

TEST_CASE("a backward without a listener is reduced in finish()", "[parallel][reducer]") {
  Fixture f;
  GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{4096, 0, true});
  reducer.begin_step(true);
  reducer.finish();
  CHECK(f.comm.calls.size() == reducer.plan().buckets.size());
  CHECK(f.comm.pending == 0);
}

TEST_CASE("ZeRO-1 reduce-scatters each bucket into this rank's shard", "[parallel][reducer][zero1]") {
  for (int rank : {0, 1, 2}) {
    Fixture f;
    FakeCommunicator comm(rank, 3);
    comm.base = f.grads.data();
    comm.watermark = &f.watermark;
    const ShardLayout layout(f.table.total_numel(), 3);
    std::vector<float> shard(static_cast<std::size_t>(layout.count(rank)));
    const TensorView shard_view(shard.data(), DType::f32, {layout.count(rank)});
    GradReducer reducer(comm, f.table, f.grad_view, ReducerOptions{4096, 0, true}, layout, shard_view);
    reducer.begin_step(true);
    for (std::int64_t w : backward_watermarks(f.table)) {
      f.watermark = w;
      reducer.grads_ready_from(w);
    }
    reducer.finish();
    REQUIRE(comm.calls.size() == reducer.plan().buckets.size());
    std::int64_t received = 0;
    for (std::size_t i = 0; i < comm.calls.size(); ++i) {
      const FakeCall& c = comm.calls[i];
      const Bucket& b = reducer.plan().buckets[i];
      CHECK(c.op == CommOp::reduce_scatter);
      CHECK(c.counts == layout.split(b.begin, b.count));
      const std::int64_t mine = c.counts[static_cast<std::size_t>(rank)];
      if (mine > 0) {
        // The piece lands where the bucket's slice meets the shard.
        const std::int64_t at = static_cast<const float*>(c.recv) - shard.data();
        CHECK(at == std::max(b.begin, layout.begin(rank)) - layout.begin(rank));
      }
      received += mine;
    }
    CHECK(received == layout.count(rank));
    CHECK(comm.pending == 0);
  }
}

TEST_CASE("the reducer refuses out-of-order use", "[parallel][reducer]") {
  Fixture f;
  GradReducer reducer(f.comm, f.table, f.grad_view, ReducerOptions{4096, 0, true});
  CHECK_THROWS_WITH(reducer.grads_ready_from(0), Catch::Contains("begin_step"));
  reducer.begin_step(true);
  reducer.grads_ready_from(100);
  CHECK_THROWS_WITH(reducer.grads_ready_from(200), Catch::Contains("back to front"));
  reducer.finish();
  CHECK_THROWS_WITH(reducer.finish(), Catch::Contains("without begin_step"));
  reducer.begin_step(true);
  CHECK_THROWS_WITH(reducer.begin_step(true), Catch::Contains("finish"));
  reducer.finish();
  std::vector<float> small(10);
  CHECK_THROWS_WITH(GradReducer(f.comm, f.table, TensorView(small.data(), DType::f32, {10}), ReducerOptions{}),
                    Catch::Contains("gradient buffer"));
}

TEST_CASE("ZeRO-2's window: claiming a reused slot waits for its reduce-scatter, and the wait is counted",
          "[parallel][reducer][zero23]") {
  Fixture f;
  FakeCommunicator comm(0, 2);
  comm.complete_on_test = false;  // a request completes only when waited for
  comm.wait_delay = std::chrono::milliseconds(5);
  auto backend = make_cpu_backend(1);
  const ShardLayout layout(f.table.total_numel(), 2);
  std::vector<float> shard(static_cast<std::size_t>(layout.count(0)));
  const TensorView shard_view(shard.data(), DType::f32, {layout.count(0)});
  GradReducer reducer(comm, *backend, f.table, TensorView{}, ReducerOptions{4096, 0, true}, layout, shard_view,
                      ShardedReduce{true, false});
  REQUIRE(reducer.window());
  REQUIRE_FALSE(reducer.window()->full);
  int reusing = 0;
  for (const auto& r : reducer.window()->reuses) reusing += r.empty() ? 0 : 1;
  REQUIRE(reusing > 0);
  // One backward as ViTModel runs it: a segment's gradient slots are asked
  // for (highest offset first), then its ready signal.
  reducer.begin_step(true);
  const auto& params = f.table.params();
  std::vector<bool> asked(params.size(), false);
  for (std::int64_t w : backward_watermarks(f.table)) {
    for (std::size_t k = params.size(); k-- > 0;)
      if (!asked[k] && params[k].offset >= w) {
        asked[k] = true;
        CHECK(!reducer.gradient_of(static_cast<int>(k)).empty());
      }
    reducer.grads_ready_from(w);
  }
  const double waited = reducer.take_window_wait_seconds();
  CHECK(waited >= 0.005);  // at least one reused slot's reduce-scatter was still in flight
  CHECK(waited < 5.0);
  CHECK(reducer.take_window_wait_seconds() == 0.0);  // taken once
  reducer.finish();
  CHECK(comm.pending == 0);
  CHECK(reducer.take_window_wait_seconds() == 0.0);  // finish()'s waits are finish()'s, not the window's
}
