// trainer_cuda_graphs_test.cpp — vit_train --cuda-graphs: a run whose step
// phases are captured and replayed computes what the eager run computes, with
// gradient accumulation and an evaluation (an eager, other-shaped forward)
// between replays. Needs a GPU; without one it is skipped (tests/test_skip.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

#include "tests/test_skip.h"
#include "train/device.h"
#include "train/trainer.h"
#include "train_util.h"

#ifdef VITSCALE_HAVE_CUDA
#include "runtime/cuda_backend.h"
#endif

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

bool have_gpu() {
#ifdef VITSCALE_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

// Losses per step of a 20-step CUDA run (an epoch is 16 steps: one evaluation
// falls between the replays), micro-batch 32 with 2 accumulation steps.
std::map<std::int64_t, double> cuda_losses(bool bf16, bool graphs, const std::string& metrics) {
  nlohmann::json j = tiny_synthetic_config();
  j["train_batch_size"] = 64;
  j["train_micro_batch_size_per_gpu"] = 32;
  j["runtime"] = {{"device", "cuda"}, {"tf32", false}, {"cuda_graphs", graphs}};
  j["bf16"] = {{"enabled", bf16}};
  j["training"]["max_steps"] = 20;
  j["data"]["synthetic"]["train_count"] = 1024;
  j["logging"] = {{"metrics_out", metrics}};
  const TrainConfig config = resolve_json(j);
  auto backend = make_backend(config);
  StopSignal stop;
  std::ostringstream console;
  TrainerIo io;
  io.console = &console;
  io.stop = &stop;
  Trainer trainer(config, *backend, io);
  const TrainResult r = trainer.run();
  INFO(console.str());
  REQUIRE(r.outcome == TrainResult::Outcome::finished);
  REQUIRE(r.step == 20);
  return losses_by_step(read_jsonl(metrics));
}

}  // namespace

TEST_CASE("CUDA-graph replays compute the eager run's losses (f32, accumulation, evaluation between)",
          "[cuda][trainer][graphs]") {
  if (!have_gpu()) VS_SKIP("no CUDA device");
  TempDir dir("graphs_f32");
  const auto eager = cuda_losses(false, false, dir / "eager.jsonl");
  const auto graphed = cuda_losses(false, true, dir / "graphs.jsonl");
  REQUIRE(eager.size() == 20);
  REQUIRE(graphed.size() == 20);
  for (const auto& [step, loss] : eager) {
    INFO("step " << step);
    // The same kernels in the same order on the same data: equal up to
    // reduction-order noise, which there is none of (deterministic kernels).
    CHECK(std::abs(graphed.at(step) - loss) <= 1e-6 * std::abs(loss));
  }
}

TEST_CASE("CUDA graphs with bf16 trains: the loss falls", "[cuda][trainer][graphs]") {
  if (!have_gpu()) VS_SKIP("no CUDA device");
  TempDir dir("graphs_bf16");
  const auto losses = cuda_losses(true, true, dir / "m.jsonl");
  REQUIRE(losses.size() == 20);
  CHECK(losses.rbegin()->second < losses.begin()->second);
}
