// Data-parallel training on real ranks equals single-process training on the
// same global batch: all-reduce and ZeRO-1/2/3, every bucket size from one
// parameter to one bucket, overlap on and off, gradient accumulation k = 4
// (accumulated locally or reduced every micro-step), ZeRO-3 with and without
// prefetch and persistent groups, with activation checkpointing; all three
// MPI progress modes for stages 0-1. fp32; relative error <= 1e-5 (stages
// 2/3 measured and checked at 1e-6); every rank bitwise-identical parameters.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>

#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu_backend.h"
#include "train_harness.h"

using namespace vitscale;
using namespace vitscale::testing;

namespace {

constexpr std::uint64_t kSeed = 1234;
constexpr double kTolerance = 1e-5;

CommOptions options(MpiProgress p) {
  CommOptions o;
  o.mpi_progress = p;
  o.timeout_s = 60;
  return o;
}

// Every rank's copy equals rank 0's, bit for bit.
bool identical_across_ranks(Communicator& comm, std::vector<float> mine) {
  std::vector<float> root = mine;
  comm.broadcast(TensorView(root.data(), DType::f32, {static_cast<std::int64_t>(root.size())}), 0).wait();
  std::vector<double> differs = {std::memcmp(root.data(), mine.data(), mine.size() * sizeof(float)) != 0 ? 1.0 : 0.0};
  comm.all_reduce_host(differs, HostReduce::sum);
  return differs[0] == 0.0;
}

struct Case {
  int zero_stage;
  std::size_t bucket_bytes;
  bool overlap;
  int accumulation;
  std::int64_t gather_elements = Zero1Optimizer::kDefaultGatherBucket;  // allgather_bucket_size
  bool every_micro_step = false;                                        // ZeRO-2/3
  std::int64_t persistence = 0;                                         // ZeRO-3: stage3_param_persistence_threshold
  std::int64_t prefetch = 50'000'000;                                   // ZeRO-3: stage3_prefetch_bucket_size
  bool checkpointing = false;                                           // activation checkpointing
  double tolerance = kTolerance;
  bool overlap_gather = true;  // ZeRO-1/2: the parameter all-gather left in flight into the next forward
};

std::string describe(const Case& c, MpiProgress p) {
  return "zero " + std::to_string(c.zero_stage) + ", bucket " + std::to_string(c.bucket_bytes) + " B, overlap " +
         (c.overlap ? "on" : "off") + ", k=" + std::to_string(c.accumulation) +
         (c.every_micro_step ? " (reduce every micro-step)" : "") + ", all-gather pieces " +
         std::to_string(c.gather_elements) + ", persistence " + std::to_string(c.persistence) + ", prefetch " +
         std::to_string(c.prefetch) + (c.checkpointing ? ", activation checkpointing" : "") +
         (c.overlap_gather ? "" : ", blocking parameter all-gather") + ", mpi " +
         mpi_progress_name(p);
}

// The model as vit_train builds it for the case's stage (train::TrainConfig::zero_gradient_window).
ModelShape shape_for(const Case& c, int micro_batch) {
  ModelShape m{micro_batch, 0, c.checkpointing};
  m.resident_gradients = !(c.zero_stage >= 2 && (c.accumulation == 1 || c.every_micro_step));
  m.resident_params = c.zero_stage < 3;
  return m;
}

// This rank's place in the run (RunShape's defaults otherwise).
RunShape shape_of(const Communicator& comm) {
  RunShape s;
  s.world = comm.world_size();
  s.rank = comm.rank();
  return s;
}

DataParallelOptions options_for(const Case& c) {
  DataParallelOptions o;
  o.reducer = ReducerOptions{c.bucket_bytes, 0, c.overlap};
  o.zero_stage = c.zero_stage;
  o.allgather_bucket_elements = c.gather_elements;
  o.reduce_every_micro_step = c.every_micro_step;
  o.zero3.persistence_threshold = c.persistence;
  o.zero3.prefetch_bucket_elements = c.prefetch;
  o.overlap_param_gather = c.overlap_gather;
  return o;
}

// The full fp32 masters (collective under ZeRO-3).
std::vector<float> full_params(ViTModel& model) {
  std::vector<float> out(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(out);
  return out;
}

// Trains K steps data-parallel and against the reference; checks gradients
// after the first step's reduction and parameters after the last, which it returns.
std::vector<float> check_equivalence(Communicator& comm, const Case& c) {
  CpuBackend backend(1);
  RunShape s = shape_of(comm);
  s.micro_batch = 4;
  s.accumulation = c.accumulation;
  s.steps = 3;

  ViTModel model(tiny_vit(), backend, shape_for(c, s.micro_batch), ImageNorm{});
  DataParallel dp(comm, model, options_for(c));
  model.init_parameters(kSeed);  // after DataParallel: ZeRO-3 takes this rank's shard
  Reference ref(backend, s, kSeed);

  for (int step = 0; step < s.steps; ++step) {
    const CommTiming t = data_parallel_step(model, dp, s, step);
    CHECK(t.buckets == static_cast<int>(dp.reducer().plan().buckets.size()));
    ref.gradients(step);
    if (step == 0) {
      // The reduced gradients themselves (this rank's shard under ZeRO-1).
      const std::vector<float> want = host_copy(backend, ref.model.grads());
      if (c.zero_stage == 0) {
        CHECK(relative_error(host_copy(backend, model.grads()), want) <= kTolerance);
      } else {
        const Zero1Optimizer& z = *dp.zero1();
        const std::vector<float> slice(want.begin() + z.shard_begin(),
                                       want.begin() + z.shard_begin() + z.shard_count());
        CHECK(relative_error(host_copy(backend, z.shard_grads()), slice) <= c.tolerance);
      }
    }
    dp.optimizer_step(test_hyper(step + 1));
    ref.update(step);
  }
  const std::vector<float> params = full_params(model);
  const std::vector<float> want = host_copy(backend, ref.model.params());
  const double err = relative_error(params, want);
  INFO("relative error " << err);
  CHECK(err <= c.tolerance);
  CHECK(identical_across_ranks(comm, params));
  CHECK(dp.grad_norm() == Approx(ref.adamw.read_grad_norm()).epsilon(1e-4));
  return params;
}

}  // namespace

TEST_CASE("data-parallel training equals single-process training on the same global batch", "[mpi][train]") {
  const std::size_t one_param = 1, some = 8 * 1024, everything = std::size_t{1} << 30;
  for (MpiProgress mode : {MpiProgress::comm_thread, MpiProgress::polling_thread, MpiProgress::nonblocking}) {
    MpiCommunicator comm(options(mode));
    for (const Case& c :
         {Case{0, some, true, 1}, Case{0, one_param, true, 1}, Case{0, everything, true, 1}, Case{0, some, false, 1},
          Case{0, some, true, 4}, Case{1, some, true, 1}, Case{1, one_param, true, 1}, Case{1, everything, false, 1},
          Case{1, some, true, 4}, Case{1, some, true, 1, 777}}) {
      INFO(describe(c, mode));
      check_equivalence(comm, c);
    }
  }
}

TEST_CASE("ZeRO-2 and ZeRO-3 training equals single-process training on the same global batch", "[mpi][train][zero23]") {
  const std::size_t one_param = 1, some = 8 * 1024, everything = std::size_t{1} << 30;
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  // The shard layout splits parameters at 2 and 3 ranks (not only at their edges).
  {
    const ParamTable table(tiny_vit());
    const ShardLayout layout(table.total_numel(), comm.world_size());
    bool splits = false;
    for (const ParamInfo& p : table.params())
      for (int r = 1; r < comm.world_size(); ++r)
        splits = splits || (layout.begin(r) > p.offset && layout.begin(r) < p.offset + p.numel);
    CHECK(splits);
  }
  constexpr double kTight = 2e-6;  // measured: 1.3e-6 at 2 ranks, as stage 1's
  for (Case c : {Case{2, some, true, 1}, Case{2, one_param, true, 1}, Case{2, everything, true, 1},
                 Case{2, some, false, 1}, Case{2, some, true, 4}, Case{2, some, true, 4, 777, true},
                 Case{2, one_param, false, 4, 777, true}, Case{3, some, true, 1}, Case{3, one_param, true, 1},
                 Case{3, everything, false, 1}, Case{3, some, true, 4}, Case{3, one_param, true, 4, 777, true},
                 Case{3, some, true, 1, 777, false, 100'000}, Case{3, some, true, 1, 777, false, 0, 0},
                 Case{3, some, true, 4, 777, true, 0, 50'000'000, true}, Case{3, one_param, true, 1, 777, false, 0, 0, true}}) {
    c.tolerance = kTight;
    INFO(describe(c, MpiProgress::comm_thread));
    check_equivalence(comm, c);
  }
}

TEST_CASE("ZeRO-2's gradient window is smaller than the gradients, ZeRO-3 gathers blocks before forward and backward",
          "[mpi][train][zero23]") {
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  CpuBackend backend(1);
  const RunShape s = shape_of(comm);
  const Case c{3, 1, true, 1};  // nothing persistent
  ViTConfig deep = tiny_vit();
  deep.depth = 6;  // blocks dominate: two blocks' buckets are under half of the model
  ViTModel model(deep, backend, shape_for(c, s.micro_batch), ImageNorm{});
  DataParallel dp(comm, model, options_for(c));
  model.init_parameters(kSeed);
  const std::int64_t n = model.table().total_numel();
  REQUIRE(dp.reducer().window() != nullptr);
  INFO(dp.memory_report());
  CHECK(!dp.reducer().window()->full);
  CHECK(dp.reducer().window()->capacity < n / 2);
  CHECK(model.grads().empty());
  CHECK(model.params().empty());
  REQUIRE(dp.zero3() != nullptr);
  CHECK(dp.zero3()->buffers() == 2);
  const int before = dp.zero3()->gathers();
  const CommTiming t = data_parallel_step(model, dp, s, 0);
  CHECK(t.gather_s > 0);                      // the passes' group gathers, counted at finish()
  CHECK(dp.take_pass_wait_seconds() >= 0);    // what the passes waited for them
  CHECK(dp.take_pass_wait_seconds() == 0);    // taken once
  dp.optimizer_step(test_hyper(1));
  // G groups: G gathers in forward, G - 2 in backward: the head and the last
  // block are still in the two buffers when backward starts.
  const int G = static_cast<int>(model.table().weight_groups().size());
  CHECK(dp.zero3()->gathers() - before == 2 * G - 2);
  MemoryPlan plan = model.memory_plan();
  dp.add_to_plan(plan);
  // Per rank: the parameter shard and two block buffers, well under the full parameters.
  CHECK(plan.params < static_cast<std::size_t>(n) * sizeof(float));
  CHECK(plan.grads < static_cast<std::size_t>(n) * sizeof(float));
}

TEST_CASE("ZeRO-1 state saved at one world size resumes at another", "[mpi][train][zero1]") {
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  CpuBackend backend(1);
  RunShape s = shape_of(comm);
  s.micro_batch = 4;
  const int K = 2;
  DataParallelOptions o;
  o.reducer.bucket_bytes = 8 * 1024;
  o.zero_stage = 1;

  ViTModel model(tiny_vit(), backend, ModelShape{s.micro_batch, 0}, ImageNorm{});
  model.init_parameters(kSeed);
  DataParallel dp(comm, model, o);
  Reference ref(backend, s, kSeed);
  for (int step = 0; step < K; ++step) {
    data_parallel_step(model, dp, s, step);
    dp.optimizer_step(test_hyper(step + 1));
    ref.gradients(step);
    ref.update(step);
  }
  // Gathered moments are the single-process optimizer's, element for element.
  std::vector<float> m, v;
  dp.gather_optimizer_state(m, v);
  CHECK(relative_error(m, host_copy(backend, ref.adamw.exp_avg())) <= kTolerance);
  CHECK(relative_error(v, host_copy(backend, ref.adamw.exp_avg_sq())) <= kTolerance);
  // Optimizer memory per rank: 1/W of the unsharded moments (plus alignment).
  const std::size_t full = 2 * sizeof(float) * static_cast<std::size_t>(model.table().total_numel());
  CHECK(dp.optimizer_bytes() <= full / static_cast<std::size_t>(s.world) + 1024);

  // Both resumed from step K's state; both must then match the reference's step K+1.
  const std::vector<float> ref_params = host_copy(backend, ref.model.params());
  const std::vector<float> ref_m = host_copy(backend, ref.adamw.exp_avg());
  const std::vector<float> ref_v = host_copy(backend, ref.adamw.exp_avg_sq());

  // W ranks' checkpoint → a world of one.
  RunShape one = s;
  one.world = 1;
  one.rank = 0;
  one.micro_batch = s.micro_batch * s.world;
  LocalCommunicator local(backend);
  ViTModel solo(tiny_vit(), backend, ModelShape{one.micro_batch, 0}, ImageNorm{});
  solo.write_params(full_params(model));
  DataParallel solo_dp(local, solo, o);
  solo_dp.load_optimizer_state(m, v);
  data_parallel_step(solo, solo_dp, one, K);
  solo_dp.optimizer_step(test_hyper(K + 1));

  // The single process's checkpoint → W ranks.
  ViTModel wide(tiny_vit(), backend, ModelShape{s.micro_batch, 0}, ImageNorm{});
  wide.write_params(ref_params);
  DataParallel wide_dp(comm, wide, o);
  wide_dp.load_optimizer_state(ref_m, ref_v);
  data_parallel_step(wide, wide_dp, s, K);
  wide_dp.optimizer_step(test_hyper(K + 1));

  ref.gradients(K);
  ref.update(K);
  const std::vector<float> want = host_copy(backend, ref.model.params());
  CHECK(relative_error(host_copy(backend, solo.params()), want) <= kTolerance);
  // read_params, not wide.params(): ZeRO-1's all-gather may still be in flight (overlap_comm).
  CHECK(relative_error(full_params(wide), want) <= kTolerance);
  CHECK(identical_across_ranks(comm, full_params(wide)));
}

// ZeRO-1/2 with overlap_comm leave the parameter all-gather in flight after
// the step, one group at a time, for the next forward to wait on: the same
// in-place collectives over the same bytes as the blocking gather (main's
// path, overlap_param_gather off), so the same bits, whatever the pieces.
TEST_CASE("ZeRO-1 and ZeRO-2 overlapped parameter all-gather gives the blocking gather's bits",
          "[mpi][train][zero23]") {
  const std::size_t one_param = 1, some = 8 * 1024;
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  auto bits_equal = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  for (Case c : {Case{2, some, true, 1}, Case{2, one_param, true, 1, 777}, Case{2, some, true, 4},
                 Case{2, some, true, 4, 777, true}, Case{1, some, true, 1}, Case{1, some, true, 4, 777}}) {
    c.tolerance = c.zero_stage == 2 ? 2e-6 : kTolerance;
    INFO(describe(c, MpiProgress::comm_thread));
    const std::vector<float> overlapped = check_equivalence(comm, c);
    Case blocking = c;
    blocking.overlap_gather = false;
    CHECK(bits_equal(overlapped, check_equivalence(comm, blocking)));
    // overlap_comm off: the blocking gather, and every bucket after backward.
    Case off = blocking;
    off.overlap = false;
    CHECK(bits_equal(overlapped, check_equivalence(comm, off)));
  }
}

TEST_CASE("ZeRO-2's parameter all-gather is in flight after the step and waited for group by group in forward",
          "[mpi][train][zero23]") {
  MpiCommunicator comm(options(MpiProgress::nonblocking));
  CpuBackend backend(1);
  const RunShape s = shape_of(comm);
  const Case c{2, 8 * 1024, true, 1, 777};
  ViTModel model(tiny_vit(), backend, shape_for(c, s.micro_batch), ImageNorm{});
  DataParallel dp(comm, model, options_for(c));
  model.init_parameters(kSeed);
  const auto groups = model.table().weight_groups();
  const int G = static_cast<int>(groups.size());
  REQUIRE(dp.zero1() != nullptr);
  CHECK(dp.zero1()->overlaps_gather());
  INFO(dp.memory_report());
  CHECK(dp.memory_report().find("overlapped with the next forward") != std::string::npos);
  // Every piece lies inside one weight group and none is over allgather_bucket_size.
  std::int64_t covered = 0;
  for (const auto& [begin, count] : dp.zero1()->gather_pieces()) {
    CHECK(count <= c.gather_elements);
    bool inside = false;
    for (const auto& g : groups) inside = inside || (begin >= g.begin && begin + count <= g.end());
    CHECK(inside);
    covered += count;
  }
  CHECK(covered == model.table().total_numel());
  data_parallel_step(model, dp, s, 0);
  CHECK(dp.zero1()->pending_gather_groups() == 0);
  dp.optimizer_step(test_hyper(1));
  CHECK(dp.zero1()->pending_gather_groups() == G);  // nothing waited for inside the step
  const CommTiming t = data_parallel_step(model, dp, s, 1);  // forward waits for every group
  CHECK(dp.zero1()->pending_gather_groups() == 0);
  CHECK(t.gather_s > 0);  // the gathers' busy time lands in the step that waited for them
  dp.optimizer_step(test_hyper(2));
  // A whole read (checkpoint, export) waits for what is still in flight.
  CHECK(dp.zero1()->pending_gather_groups() == G);
  std::vector<float> full(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(full);
  CHECK(dp.zero1()->pending_gather_groups() == 0);
  CHECK(identical_across_ranks(comm, full));
}
