// The ZeRO step replay and memory model (tools/scaling/zero_*.h) against
// closed forms and hand-computed timelines.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "parallel/bucket_plan.h"
#include "parallel/grad_window.h"
#include "runtime/backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_model.h"
#include "tests/scaling/sim_fixtures.h"
#include "tools/scaling/network_model.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/timeline.h"
#include "tools/scaling/zero_memory.h"
#include "tools/scaling/zero_timeline.h"

using namespace vitscale;
using namespace vitscale::scaling;
using scaling::testing::four_params;
using scaling::testing::simple_net;

namespace {

ViTConfig small_vit() {
  ViTConfig c;
  c.image_size = 32, c.channels = 3, c.patch_size = 8, c.dim = 64, c.depth = 4, c.heads = 4, c.mlp_dim = 128;
  c.num_classes = 10;
  return c;
}

ZeroOptions zero(int stage, bool checkpointing = false) {
  ZeroOptions z;
  z.stage = stage;
  z.checkpointing = checkpointing;
  return z;
}

// Every group gathered before every forward and every backward, nothing persistent: the textbook stage 3.
ZeroOptions textbook(int stage) {
  ZeroOptions z = zero(stage);
  z.keep_resident = false;
  return z;
}

StepOptions on(int world, std::size_t bucket_bytes = 4000000, bool overlap = true) {
  StepOptions o;
  o.world = world;
  o.bucket_bytes = bucket_bytes;
  o.overlap = overlap;
  return o;
}

}  // namespace

TEST_CASE("zero replay at stage 0 is the data-parallel replay, step for step", "[zero]") {
  const StepProfile p = four_params(0.1, 0.05, 0.01);
  // share 2: processor sharing at 1, plus contended curves at two gaps (each
  // bucket's rates depend on the compute before it, counted the same way).
  for (double share : {0.0, 1.0, 2.0})
    for (bool overlap : {true, false})
      for (int accum : {1, 3}) {
        StepOptions o = on(2, 4000000, overlap);
        o.accumulation = accum;
        NetworkModel net = simple_net(std::min(share, 1.0));
        if (share == 2.0) {
          net.contended.push_back({2, "thread", 1000.0, {{4e6, 0.010, 0.002}}});
          net.contended.push_back({2, "thread", 60000.0, {{4e6, 0.012, 0.009}}});
        }
        const StepResult dp = simulate_step(p, net, o);
        const ZeroStepResult z = simulate_zero_step(p, net, o, zero(0));
        CAPTURE(share, overlap, accum);
        CHECK(z.step_s == Approx(dp.step_s));
        CHECK(z.exposed_s == Approx(dp.exposed_s).margin(1e-12));
        CHECK(z.comm_s == Approx(dp.comm_s));
        CHECK(z.collectives == 4);
      }
}

TEST_CASE("traffic per rank: stages 0-2 send 2(p-1)/p of the parameter bytes, stage 3 sends 3(p-1)/p", "[zero]") {
  const StepProfile p = analytic_profile(small_vit(), AnalyticOptions{100.0, 8, 0.001, "test"});
  const double S = static_cast<double>(p.total_elements) * 4;
  for (int world : {2, 4, 8}) {
    const double unit = (world - 1.0) / world * S;
    for (int stage = 0; stage <= 3; ++stage) {
      for (int accum : {1, 2}) {
        StepOptions o = on(world, 1u << 20);
        o.accumulation = accum;
        const ZeroStepResult r = simulate_zero_step(p, simple_net(), o, textbook(stage));
        CAPTURE(world, stage, accum);
        // Stage 3 gathers twice every micro-step; every stage reduces once (local accumulation).
        const double expect = stage == 3 ? (2.0 * accum + 1.0) * unit : 2.0 * unit;
        CHECK(r.sent_bytes == Approx(expect));
        CHECK(r.gathered_bytes == Approx(stage == 0 ? 0.0 : stage == 3 ? 2.0 * unit * accum : unit));
        // DeepSpeed's stage 2/3 reduce on every micro-step.
        ZeroOptions every = textbook(stage);
        every.reduce_every_micro_step = true;
        const double reduced = (stage >= 2 ? accum : 1) * (stage == 0 ? 2.0 : 1.0) * unit;
        CHECK(simulate_zero_step(p, simple_net(), o, every).sent_bytes - r.gathered_bytes == Approx(reduced));
      }
    }
  }
  // As parallel/zero3_params.h does it: the two buffers still hold the last two
  // groups of forward (the last block and the head: norm + head) when backward
  // starts; small groups persist, gathered once after the step.
  const ParamTable table(small_vit());
  const double head =
      static_cast<double>(table.total_numel() - table.params()[static_cast<std::size_t>(table.norm_w)].offset) * 4;
  const double embed =
      static_cast<double>(table.params()[static_cast<std::size_t>(table.blocks[0].norm1_w)].offset) * 4;
  const ZeroStepResult kept = simulate_zero_step(p, simple_net(), on(4, 1u << 20), zero(3));
  const double block = static_cast<double>(table.weight_groups()[1].count) * 4;
  CHECK(kept.sent_bytes == Approx(3.0 * 0.75 * S - 0.75 * (head + block)));
  ZeroOptions persist = zero(3);
  persist.persistence_elements = 20000;  // the embedding (13.5 k) and the head (0.8 k), not a block (33.5 k)
  const ZeroStepResult pr = simulate_zero_step(p, simple_net(), on(4, 1u << 20), persist);
  // Blocks twice, but the last two once (still in the buffers when backward starts); the small groups once.
  CHECK(pr.gathered_bytes == Approx(0.75 * (2.0 * (S - head - embed) - 2 * block + head + embed)));
  const ZeroStepResult one = simulate_zero_step(p, simple_net(), on(1), zero(3));
  CHECK(one.sent_bytes == 0.0);
  CHECK(one.exposed_s == 0.0);
}

TEST_CASE("stage 1 and 2, no overlap: reduce-scatter, AdamW on half, all-gather, all exposed", "[zero]") {
  const StepProfile p = four_params(0.1, 0.05, 0.02);
  const double half = 0.5 * 16e6 / 1e9;  // reduce-scatter or all-gather of 16 MB on 2 ranks: 8 ms
  for (int stage : {1, 2}) {
    const ZeroStepResult r = simulate_zero_step(p, simple_net(), on(2, 1u << 30, false), zero(stage));
    CHECK(r.collectives == 2);
    CHECK(r.exposed_s == Approx(2 * half));
    CHECK(r.optimizer_s == Approx(0.01));
    CHECK(r.step_s == Approx(0.1 + 0.2 + half + 0.01 + half));
  }
}

TEST_CASE("stage 3: the first gather is exposed, prefetch hides the rest, the last reduce-scatter waits", "[zero]") {
  // Forward 25 ms per part, backward 50 ms; a part's gather and a bucket's reduce-scatter: 2 ms.
  const StepProfile p = four_params(0.1, 0.05, 0.02);
  const ZeroStepResult r = simulate_zero_step(p, simple_net(), on(2), textbook(3));
  const double piece = 0.5 * 4e6 / 1e9;
  CHECK(r.collectives == 4 + 4 + 4);
  CHECK(r.exposed_s == Approx(2 * piece));
  CHECK(r.step_s == Approx(piece + 0.1 + 0.2 + piece + 0.01));
  CHECK(r.overlap_ratio() == Approx(1.0 - 2.0 / 12.0));
  // The last two groups of forward are the first two of backward: still in the buffers, not gathered again.
  const ZeroStepResult kept = simulate_zero_step(p, simple_net(), on(2), zero(3));
  CHECK(kept.collectives == 4 + 2 + 4);
  CHECK(kept.step_s == Approx(r.step_s));
  // A gather slower than a part's forward (1 MB/s: 2 s each): compute waits on every part.
  NetworkModel slow = simple_net();
  slow.intra.bandwidth_GBps = 1e-3;
  slow.inter = slow.intra;
  const ZeroStepResult s = simulate_zero_step(p, slow, on(2), zero(3));
  CHECK(s.step_s > 8 * 2.0);
  CHECK(s.exposed_s > s.step_s - (0.3 + 0.01) - 1e-9);
}

TEST_CASE("stage 1 and 2 with overlap: each group's gather from the last step waits only the first forward part",
          "[zero]") {
  // Four groups of 4 MB: gathers of 2 ms, issued (FIFO) before the step's
  // input; the forward parts take 25 ms, so only the first waits; the last
  // reduce-scatter (2 ms) waits as in every stage.
  const StepProfile p = four_params(0.1, 0.05, 0.02);
  const double piece = 0.5 * 4e6 / 1e9;
  for (int stage : {1, 2}) {
    const ZeroStepResult r = simulate_zero_step(p, simple_net(), on(2), zero(stage));
    CAPTURE(stage);
    CHECK(r.collectives == 4 + 4);
    CHECK(r.gathered_bytes == Approx(0.5 * 16e6));
    CHECK(r.exposed_s == Approx(2 * piece));
    CHECK(r.step_s == Approx(piece + 0.1 + 0.2 + piece + 0.01));
  }
}

TEST_CASE("stage 3: nothing is prefetched across a persistent group, so the first block's gather waits", "[zero]") {
  // A small persistent "embedding" p0 (1000 elements) before three 4 MB groups.
  StepProfile p;
  p.source = "test";
  p.micro_batch = 1;
  p.forward_s = 0.1;
  p.optimizer_s = 0.02;
  p.params = {{0, 1000}, {1000, 1000000}, {1001000, 1000000}, {2001000, 1000000}};
  p.total_elements = 3001000;
  for (int i = 3; i >= 0; --i) p.backward.push_back({"p" + std::to_string(i), 0.05, p.params[i].offset});
  ZeroOptions z = zero(3);
  z.persistence_elements = 1000;
  const ZeroStepResult r = simulate_zero_step(p, simple_net(), on(2), z);
  const double piece = 0.5 * 4e6 / 1e9, tiny = 0.5 * 4000 / 1e9;
  // Forward: p0 computes (25 ms) without prefetching p1, whose gather then
  // waits in full; p1 prefetches p2, p2 prefetches p3. Backward: p3 and p2 are
  // still in the two buffers, p2 prefetches p1. Then the last reduce-scatter
  // (p0's 4 kB bucket) and the persistent p0's re-gather after the optimizer.
  CHECK(r.gathered_bytes == Approx(0.5 * (4 * 4e6 + 4000)));
  CHECK(r.exposed_s == Approx(piece + 2 * tiny));
  CHECK(r.step_s == Approx(piece + 0.1 + 0.2 + tiny + 0.01 + tiny));
}

TEST_CASE("MPI progress only inside MPI calls hides nothing: every collective is exposed", "[zero]") {
  const StepProfile p = four_params(0.1, 0.05, 0.02);
  for (int stage = 0; stage <= 3; ++stage) {
    ZeroOptions z = zero(stage);
    const ZeroStepResult engine = simulate_zero_step(p, simple_net(), on(2), z);
    z.progress = CommProgress::host_calls;
    const ZeroStepResult calls = simulate_zero_step(p, simple_net(), on(2), z);
    CAPTURE(stage);
    CHECK(calls.collectives == engine.collectives);
    CHECK(calls.comm_s == Approx(engine.comm_s));  // the same work, at full speed either way (no contention here)
    CHECK(calls.exposed_s == Approx(calls.comm_s));
    CHECK(calls.step_s == Approx(calls.compute_s + calls.optimizer_s + calls.comm_s));
    CHECK(calls.step_s > engine.step_s);
  }
  NetworkModel cpu = simple_net();
  CHECK(comm_progress_of(cpu) == CommProgress::engine);  // vit_train's default: the communication thread
  cpu.mpi_progress = "nonblocking";
  CHECK(comm_progress_of(cpu) == CommProgress::host_calls);
}

TEST_CASE("checkpointing recomputes the forward of every block but the last", "[zero]") {
  const StepProfile p = four_params(0.1, 0.05, 0.0, "blocks.");
  const ZeroStepResult plain = simulate_zero_step(p, simple_net(), on(1), zero(0, false));
  const ZeroStepResult ckpt = simulate_zero_step(p, simple_net(), on(1), zero(0, true));
  CHECK(ckpt.recompute_s == Approx(0.75 * 0.1));  // 3 of 4 blocks' forward
  CHECK(ckpt.step_s - plain.step_s == Approx(0.075));
  CHECK(ckpt.recompute_s / ckpt.compute_s == Approx(0.075 / (0.1 + 0.2 + 0.075)));
  // A real ViT profile: L−1 of the L equal blocks, nothing else.
  const ViTConfig c = small_vit();
  const StepProfile v = analytic_profile(c, AnalyticOptions{100.0, 8, 0.001, "test"});
  const ZeroStepResult vr = simulate_zero_step(v, simple_net(), on(1), zero(0, true));
  double block_fwd = 0;
  for (const auto& s : v.backward)
    if (s.label == "blocks.0") block_fwd = v.forward_s * s.seconds / v.backward_s();
  CHECK(vr.recompute_s == Approx((c.depth - 1) * block_fwd));
}

TEST_CASE("local copies: one rank's reduce-scatter copies every gradient once, a stage-3 gather its rank's share",
          "[zero]") {
  // 16 MB of gradients in four 4 MB groups; copies at 1 GB/s.
  StepProfile p = four_params(0.1, 0.05, 0.02);
  const double free_copies0 = simulate_zero_step(p, simple_net(), on(1), zero(0)).step_s;
  p.copy_bytes_per_s = 1e9;
  const double all = 16e6 / 1e9, group = 4e6 / 1e9;
  const ZeroStepResult s0 = simulate_zero_step(p, simple_net(), on(1), zero(0));
  CHECK(s0.step_s == Approx(free_copies0));  // stage 0 copies nothing
  for (int stage : {1, 2}) {
    CAPTURE(stage);
    const ZeroStepResult r = simulate_zero_step(p, simple_net(), on(1), zero(stage));
    CHECK(r.collectives == 0);
    CHECK(r.step_s == Approx(s0.step_s + all));
    StepOptions accum = on(1);
    accum.accumulation = 3;  // reduced once, on the last micro-step
    CHECK(simulate_zero_step(p, simple_net(), accum, zero(stage)).step_s ==
          Approx(simulate_zero_step(p, simple_net(), accum, zero(0)).step_s + all));
  }
  // Stage 3 at one rank: no collective, but every gather's copy of the whole
  // group; textbook: 8 gathers (each group before its forward and its backward).
  const ZeroStepResult t1 = simulate_zero_step(p, simple_net(), on(1), textbook(3));
  CHECK(t1.collectives == 0);
  CHECK(t1.exposed_s == 0.0);
  CHECK(t1.step_s == Approx(s0.step_s + all + 8 * group));
  // Keeping the last two forward groups resident for backward: 6 gathers.
  CHECK(simulate_zero_step(p, simple_net(), on(1), zero(3)).step_s == Approx(s0.step_s + all + 6 * group));
  // Two ranks: each gather copies half the group; the reduce-scatters copy
  // nothing locally. The prefetched gathers still hide behind the compute.
  StepProfile no_copies = p;
  no_copies.copy_bytes_per_s = 0;
  const ZeroStepResult t2 = simulate_zero_step(p, simple_net(), on(2), textbook(3));
  const ZeroStepResult t2_free = simulate_zero_step(no_copies, simple_net(), on(2), textbook(3));
  CHECK(t2.collectives == t2_free.collectives);
  CHECK(t2.exposed_s == Approx(t2_free.exposed_s));
  CHECK(t2.step_s == Approx(t2_free.step_s + 8 * group / 2));
  CHECK(simulate_zero_step(p, simple_net(), on(2), zero(2)).step_s ==
        Approx(simulate_zero_step(no_copies, simple_net(), on(2), zero(2)).step_s));
}

TEST_CASE("a profile keeps its copy rate through JSON, a file without one has none, a negative one is refused",
          "[zero]") {
  StepProfile p = four_params(0.1, 0.05, 0.02);
  p.copy_bytes_per_s = 9.5e9;
  CHECK(profile_from_json(to_json(p)).copy_bytes_per_s == 9.5e9);
  nlohmann::json old = to_json(p);
  old.erase("copy_bytes_per_s");
  CHECK(profile_from_json(old).copy_bytes_per_s == 0.0);
  CHECK(profile_from_json(old).copy_s(1e9) == 0.0);
  old["copy_bytes_per_s"] = -1.0;
  CHECK_THROWS_WITH(profile_from_json(old), Catch::Contains("copy_bytes_per_s"));
}

TEST_CASE("zero replay refuses a stage outside 0-3", "[zero]") {
  const StepProfile p = four_params(0.1, 0.05, 0.0);
  CHECK_THROWS_WITH(simulate_zero_step(p, simple_net(), on(2), zero(4)), Catch::Contains("stage 4"));
  CHECK_THROWS_WITH(zero_memory(small_vit(),
                                [] {
                                  ZeroMemoryOptions o;
                                  o.stage = -1;
                                  return o;
                                }()),
                    Catch::Contains("stage -1"));
}

TEST_CASE("activation bytes are the model's own arena, with and without checkpointing", "[zero][memory]") {
  auto backend = make_cpu_backend(1);
  const ViTConfig c = small_vit();
  for (bool ckpt : {false, true}) {
    ViTModel model(c, *backend, ModelShape{6, 0, ckpt},
                   ImageNorm{c.channels, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}});
    CAPTURE(ckpt);
    CHECK(activation_bytes(c, 6, ckpt, 4) == model.memory_plan().activations);
  }
  CHECK(activation_bytes(c, 6, true, 4) < activation_bytes(c, 6, false, 4));
}

TEST_CASE("memory per rank by stage: the ZeRO paper's 16, 4+12/p, 2+14/p and 16/p bytes per parameter",
          "[zero][memory]") {
  const ViTConfig c = small_vit();
  const ParamTable table(c);
  const auto psi = static_cast<double>(table.total_numel());
  const double block = static_cast<double>(table.weight_groups()[1].count);
  const int p = 4;
  ZeroMemoryOptions o;
  o.world = p;
  o.bytes = MemoryBytes::mixed();
  o.bucket_bytes = 1024;
  // Model states, and all a rank holds but activations (the shard destination, window, gathered blocks).
  auto states = [](const ZeroMemory& m) { return static_cast<double>(m.params + m.grads + m.optimizer); };
  auto held = [&](const ZeroMemory& m) { return states(m) + static_cast<double>(m.working); };
  o.stage = 0;
  const ZeroMemory m0 = zero_memory(c, o);
  CHECK(states(m0) == 16 * psi);
  CHECK(m0.working == 0);
  o.stage = 1;
  const ZeroMemory m1 = zero_memory(c, o);
  CHECK(states(m1) == Approx(4 * psi + 12 * psi / p).margin(p));  // shards round up
  CHECK(held(m1) == Approx(4 * psi + 14 * psi / p).margin(p));    // + the gradient shard
  o.stage = 2;
  const ZeroMemory m2 = zero_memory(c, o);
  // + the gradient window: the trainer's own plan over 512-element buckets (1024 bytes of 2-byte gradients).
  const GradWindowPlan w = plan_grad_window(plan_buckets(table, 512 * sizeof(float)), table, true);
  REQUIRE(!w.full);
  const double window = 2.0 * static_cast<double>(w.capacity);
  CHECK(m2.window_buckets == w.bucket_count());
  CHECK(m2.window_buckets > 2.0);  // not the two buckets the model counted before it asked the plan
  CHECK(held(m2) == Approx(2 * psi + 14 * psi / p + window).margin(2 * p));
  o.stage = 3;
  const ZeroMemory m3 = zero_memory(c, o);
  CHECK(held(m3) == Approx(16 * psi / p + window + 2 * 2 * block).margin(3 * p));  // + two gathered blocks
  o.persistence_elements = 20000;  // the embedding and the head stay gathered
  const double small = psi - static_cast<double>(c.depth) * block;
  CHECK(held(zero_memory(c, o)) == Approx(held(m3) + 2 * small).margin(3 * p));
  o.persistence_elements = 0;
  CHECK(m0.activations == m3.activations);
  o.checkpointing = true;
  CHECK(zero_memory(c, o).activations < m3.activations);
  o.checkpointing = false;
  // With accumulation (summed locally) or without overlap, stages 2-3 keep the full gradient buffer.
  o.accumulation = 4;
  CHECK(zero_memory(c, o).grads == 2 * table.total_numel());
  o.reduce_every_micro_step = true;
  CHECK(zero_memory(c, o).grads == static_cast<std::size_t>(window));
  o.accumulation = 1;
  o.overlap = false;
  CHECK(zero_memory(c, o).grads == 2 * table.total_numel());
  // vitscale's fp32 runs: the same 16 bytes, no master copy.
  o.bytes = MemoryBytes::fp32();
  o.stage = 0;
  CHECK(states(zero_memory(c, o)) == 16 * psi);
}

TEST_CASE("stage 2's gradient window: backward waits for the reduce-scatter that frees a reused slot", "[zero]") {
  // Four 4 MB parameters, one bucket each; backward segments of 10, 1, 10 and
  // 10 ms; every collective of 4 MB on 2 ranks takes 8 ms (0.25 GB/s). The
  // window (parallel/grad_window.h) holds 2 buckets: p1's bucket reuses p3's
  // slot, p0's reuses p2's. Forward: 4 parts of 10 ms behind the last step's
  // carried gathers (done at 8, 16, 24, 32 ms): it ends at 48 ms. Backward:
  // p3 48-58 (its reduce-scatter R0 58-66), p2 58-59 (R1 66-74).
  //   stage 1 (full buffer): p1 59-69 (R2 74-82), p0 69-79 (R3 82-90); AdamW
  //     on the half (5 ms) after 90: 95 ms; exposed 8 (the first gather) + 11.
  //   stage 2: p1 waits for R0, 66-76 (R2 76-84); p0 76-86 (R1 was done at 74;
  //     R3 86-94): 99 ms; exposed 8 + 7 (the slot) + 8.
  StepProfile p = four_params(0.04, 0.01, 0.01);
  p.backward[1].seconds = 0.001;
  NetworkModel net = simple_net();
  net.intra.bandwidth_GBps = net.inter.bandwidth_GBps = 0.25;
  const StepOptions o = on(2, 4000000);
  const ZeroStepResult one = simulate_zero_step(p, net, o, zero(1));
  const ZeroStepResult two = simulate_zero_step(p, net, o, zero(2));
  CHECK(one.step_s == Approx(0.095));
  CHECK(one.exposed_s == Approx(0.019));
  CHECK(two.step_s == Approx(0.099));
  CHECK(two.exposed_s == Approx(0.023));
  CHECK(two.sent_bytes == Approx(one.sent_bytes));  // the same traffic: only the wait differs
  // Accumulating locally (2 micro-steps, in the full buffer): no window, no wait.
  StepOptions accum = o;
  accum.accumulation = 2;
  CHECK(simulate_zero_step(p, net, accum, zero(2)).step_s == Approx(simulate_zero_step(p, net, accum, zero(1)).step_s));
  // Overlap off: the full buffer too.
  const StepOptions off = on(2, 4000000, false);
  CHECK(simulate_zero_step(p, net, off, zero(2)).step_s == Approx(simulate_zero_step(p, net, off, zero(1)).step_s));
}
