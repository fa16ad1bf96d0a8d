// Activation checkpointing (ModelShape::activation_checkpointing): each block
// keeps only its input, backward recomputes the block. The losses and every
// gradient are the same bits as without it, through gradient accumulation, and
// the activation arena is smaller by about (depth - 1) blocks' working sets.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/backend.h"
#include "runtime/vit_model.h"

using namespace vitscale;

namespace {

struct StepResult {
  std::vector<float> losses, grads;
  std::size_t activation_bytes = 0;
};

StepResult two_micro_steps(const ViTConfig& config, bool checkpointing, Backend& backend) {
  constexpr int kBatch = 6;
  ModelShape shape{kBatch, 0, checkpointing};
  ViTModel model(config, backend, shape, ImageNorm{config.channels, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}});
  model.init_parameters(7);
  model.zero_grads();
  std::mt19937 gen(3);
  StepResult r;
  for (int micro = 0; micro < 2; ++micro) {
    // The second micro-batch is smaller: views with another leading dim.
    const int batch = micro == 0 ? kBatch : kBatch - 2;
    std::vector<std::uint8_t> images(
        static_cast<std::size_t>(batch * config.channels * config.image_size * config.image_size));
    for (auto& p : images) p = static_cast<std::uint8_t>(gen() & 0xff);
    std::vector<float> targets(static_cast<std::size_t>(batch * config.num_classes), 0.f);
    for (int b = 0; b < batch; ++b) targets[static_cast<std::size_t>(b * config.num_classes) + gen() % 10] = 1.f;
    model.upload_batch(images.data(), targets.data(), batch);
    model.forward(1.f / 10.f);
    model.backward();
    const std::vector<float> l = model.read_losses();
    r.losses.insert(r.losses.end(), l.begin(), l.end());
  }
  r.grads.resize(static_cast<std::size_t>(model.table().total_numel()));
  backend.copy_to_host(r.grads.data(), model.grads().data, model.grads().bytes());
  r.activation_bytes = model.memory_plan().activations;
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("activation checkpointing gives the same losses and gradients, bit for bit, in less memory",
          "[runtime][checkpointing]") {
  auto backend = make_cpu_backend(2);
  ViTConfig config;
  config.image_size = 16, config.channels = 3, config.patch_size = 4, config.dim = 48, config.depth = 3;
  config.heads = 3, config.mlp_dim = 96, config.num_classes = 10;
  config.pooling = GENERATE(Pooling::cls_token, Pooling::mean);
  const StepResult plain = two_micro_steps(config, false, *backend);
  const StepResult recomputed = two_micro_steps(config, true, *backend);
  CHECK(same_bits(recomputed.losses, plain.losses));
  CHECK(same_bits(recomputed.grads, plain.grads));
  // Per block and image the working set is T·(7D + 2F) values plus 4T + H·T
  // statistics; only one of the three blocks' sets is kept.
  const std::int64_t T = config.tokens(), D = config.dim, F = config.mlp_dim, H = config.heads, B = 6;
  const std::int64_t set_bytes = B * (T * (7 * D + 2 * F) + 4 * T + H * T) * 4;
  CHECK(plain.activation_bytes - recomputed.activation_bytes >= static_cast<std::size_t>(2 * set_bytes));
}
