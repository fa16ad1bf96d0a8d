// The whole model against the LibTorch reference (tools/torch_ref): the same
// weights and batches through vitscale's CPU backend and through LibTorch's
// autograd give the same loss, logits and every parameter gradient, and the
// same loss trajectory over 20 clipped AdamW steps; checkpoints move between
// the two through safetensors, and a damaged weights file is refused by both.
//
// Tolerances (docs/parity.md): loss and logits ‖a−b‖/‖b‖ ≤ 1e-5; each
// parameter's gradient ≤ 1e-4 (per tensor); the gradient norm ≤ 1e-5; the
// mean loss of every one of 20 steps ≤ 1e-4. Seeds are fixed (a trajectory
// test with a tolerance must not be a lottery); VITSCALE_TEST_SEED overrides.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "runtime/adamw_optimizer.h"
#include "runtime/safetensors.h"
#include "runtime/vit_model.h"
#include "tools/torch_ref/torch_vit.h"

using namespace vitscale;
using Catch::Matchers::Contains;
using torch_ref::TorchViT;
namespace fs = std::filesystem;

namespace {

std::uint64_t test_seed() {
  if (const char* s = std::getenv("VITSCALE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return 20240611;
}

// Small enough for 2 shared cores, big enough to have every part: 2 blocks,
// 4 heads of 16, an MLP wider than the residual stream.
ViTConfig small_vit(int image, int channels, int patch, Pooling pooling) {
  ViTConfig c;
  c.image_size = image;
  c.channels = channels;
  c.patch_size = patch;
  c.dim = 64;
  c.depth = 2;
  c.heads = 4;
  c.mlp_dim = 128;
  c.num_classes = 10;
  c.pooling = pooling;
  return c;
}

ImageNorm norm_for(int channels) {
  ImageNorm n;
  n.channels = channels;
  const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, sd[3] = {0.2470f, 0.2435f, 0.2616f};  // CIFAR-10's
  for (int c = 0; c < channels; ++c) {
    n.mean[c] = mean[c];
    n.std[c] = sd[c];
  }
  return n;
}

struct Batch {
  std::vector<std::uint8_t> images;  // (B, C, S, S)
  std::vector<float> targets;        // (B, K)
};

// Random pixels; even images get smoothed one-hot targets (0.1 smoothing),
// odd ones random soft targets (as mixup would make).
Batch random_batch(const ViTConfig& c, int batch, int source, std::mt19937_64& rng) {
  const std::size_t K = static_cast<std::size_t>(c.num_classes);
  Batch b;
  b.images.resize(static_cast<std::size_t>(batch) * c.channels * source * source);
  std::uniform_int_distribution<int> pixel(0, 255), label(0, c.num_classes - 1);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  for (auto& p : b.images) p = static_cast<std::uint8_t>(pixel(rng));
  b.targets.assign(static_cast<std::size_t>(batch) * K, 0.f);
  for (int i = 0; i < batch; ++i) {
    float* t = b.targets.data() + static_cast<std::size_t>(i) * K;
    if (i % 2 == 0) {
      for (std::size_t k = 0; k < K; ++k) t[k] = 0.1f / static_cast<float>(K);
      t[label(rng)] += 0.9f;
    } else {
      float sum = 0.f;
      for (std::size_t k = 0; k < K; ++k) sum += t[k] = unit(rng);
      for (std::size_t k = 0; k < K; ++k) t[k] /= sum;
    }
  }
  return b;
}

// ‖a − b‖ / ‖b‖ in double (0 when both are zero).
double rel_err(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return diff == 0 ? 0.0 : std::sqrt(diff / ref);
}

double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / static_cast<double>(v.size());
}

std::vector<float> read_grads(ViTModel& model) {
  std::vector<float> g(static_cast<std::size_t>(model.table().total_numel()));
  model.backend().copy_to_host(g.data(), model.grads().data, model.grads().bytes());
  return g;
}

struct ParityCase {
  ViTConfig config;
  int source_size = 0;  // S; 0: the model's image size
  int batch = 8;
};

void check_training_parity(const ParityCase& pc) {
  const ViTConfig& cfg = pc.config;
  const int B = pc.batch, S = pc.source_size ? pc.source_size : cfg.image_size;
  const std::uint64_t seed = test_seed();
  CAPTURE(cfg.describe(), S, B, seed);
  const ImageNorm norm = norm_for(cfg.channels);

  auto backend = make_cpu_backend();
  ViTModel model(cfg, *backend, ModelShape{B, S}, norm);
  AdamWOptimizer optimizer(*backend, model.table());
  TorchViT ref(cfg, norm);

  model.init_parameters(seed);
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(flat);
  ref.load_flat(flat);
  REQUIRE(ref.flat_params() == flat);

  AdamWHyper hyper;
  hyper.lr = 2e-3f;
  hyper.weight_decay = 0.05f;
  hyper.max_grad_norm = 0.5f;  // below the first steps' norms: clipping is exercised
  std::mt19937_64 rng(seed);
  double worst_logits = 0, worst_loss = 0, worst_grad = 0, worst_norm = 0, worst_trajectory = 0;
  std::string worst_grad_name;
  int clipped_steps = 0;
  double first_loss = 0, last_loss = 0;
  constexpr int kSteps = 20;
  for (int step = 1; step <= kSteps; ++step) {
    CAPTURE(step);
    const Batch batch = random_batch(cfg, B, S, rng);

    model.zero_grads();
    model.upload_batch(batch.images.data(), batch.targets.data(), B);
    model.forward(1.f / static_cast<float>(B));
    model.backward();
    const double loss = mean_of(model.read_losses());

    ref.zero_grads();
    const torch_ref::TorchForward tf = ref.forward(batch.images, batch.targets, B);
    ref.backward();

    const double loss_err = std::abs(loss - tf.loss) / std::abs(static_cast<double>(tf.loss));
    worst_trajectory = std::max(worst_trajectory, loss_err);
    CHECK(loss_err <= 1e-4);
    (step == 1 ? first_loss : last_loss) = loss;
    if (step == 1) {
      // The first step, from identical weights: the strict comparison.
      worst_loss = loss_err;
      CHECK(loss_err <= 1e-5);
      worst_logits = rel_err(model.read_logits(), tf.logits);
      CHECK(worst_logits <= 1e-5);
      const std::vector<float> grads = read_grads(model), ref_grads = ref.flat_grads();
      for (const ParamInfo& p : model.table().params()) {
        const auto range = [&](const std::vector<float>& v) {
          return std::span<const float>(v).subspan(static_cast<std::size_t>(p.offset),
                                                   static_cast<std::size_t>(p.numel));
        };
        const double e = rel_err(range(grads), range(ref_grads));
        CAPTURE(p.name);
        CHECK(e <= 1e-4);
        if (e > worst_grad) worst_grad = e, worst_grad_name = p.name;
      }
    }

    hyper.step = step;
    optimizer.step(model.params(), model.grads(), hyper);
    model.sync_compute_params();
    const double norm_ref = ref.optimizer_step(hyper).value();
    const double norm_err = std::abs(optimizer.read_grad_norm() - norm_ref) / norm_ref;
    worst_norm = std::max(worst_norm, norm_err);
    CHECK(norm_err <= 1e-5);
    if (norm_ref > hyper.max_grad_norm) ++clipped_steps;
  }
  CHECK(clipped_steps > 0);

  // The weights after 20 steps, per tensor: catches a wrong weight-decay group
  // or bias correction that the loss alone would barely show. The key third of
  // each qkv bias is left out: its gradient is exactly zero in exact arithmetic
  // (softmax ignores a per-row shift of the scores), so AdamW turns each
  // side's rounding noise into ±lr steps that differ and change no output.
  double worst_weight = 0;
  std::string worst_weight_name;
  {
    std::vector<float> weights(flat.size());
    model.read_params(weights);
    const std::vector<float> ref_weights = ref.flat_params();
    for (const ParamInfo& p : model.table().params()) {
      std::vector<float> a(weights.begin() + p.offset, weights.begin() + p.offset + p.numel),
          b(ref_weights.begin() + p.offset, ref_weights.begin() + p.offset + p.numel);
      if (p.name.ends_with("attn.qkv.bias")) {
        const auto D = static_cast<std::ptrdiff_t>(cfg.dim);
        a.erase(a.begin() + D, a.begin() + 2 * D);
        b.erase(b.begin() + D, b.begin() + 2 * D);
      }
      const double e = rel_err(a, b);
      CAPTURE(p.name);
      CHECK(e <= 1e-4);
      if (e > worst_weight) worst_weight = e, worst_weight_name = p.name;
    }
  }
  std::printf(
      "parity %s S=%d B=%d: loss %.2e, logits %.2e, worst grad %.2e (%s), grad norm %.2e, "
      "20-step loss trajectory %.2e (loss %.4f → %.4f), weights after %.2e (%s), %d/%d steps clipped\n",
      cfg.describe().c_str(), S, B, worst_loss, worst_logits, worst_grad, worst_grad_name.c_str(), worst_norm,
      worst_trajectory, first_loss, last_loss, worst_weight, worst_weight_name.c_str(), clipped_steps, kSteps);
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("vitscale-torch-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("vitscale trains like LibTorch: 1x28x28, patch 4, class token (T=50)", "[torch][parity]") {
  check_training_parity({small_vit(28, 1, 4, Pooling::cls_token)});
}

TEST_CASE("vitscale trains like LibTorch: 1x28x28, patch 4, mean pooling (T=49)", "[torch][parity]") {
  check_training_parity({small_vit(28, 1, 4, Pooling::mean)});
}

TEST_CASE("vitscale trains like LibTorch: 3x32x32, patch 4, class token (T=65)", "[torch][parity]") {
  check_training_parity({small_vit(32, 3, 4, Pooling::cls_token)});
}

TEST_CASE("vitscale trains like LibTorch: 3x32x32, patch 4, mean pooling (T=64)", "[torch][parity]") {
  check_training_parity({small_vit(32, 3, 4, Pooling::mean)});
}

TEST_CASE("vitscale trains like LibTorch on images resized from 16x16 to 32x32", "[torch][parity]") {
  check_training_parity({small_vit(32, 3, 4, Pooling::cls_token), /*source_size=*/16});
  check_training_parity({small_vit(32, 3, 4, Pooling::mean), /*source_size=*/16});
}

TEST_CASE("a vitscale safetensors checkpoint loads into LibTorch and gives the same logits", "[torch][safetensors]") {
  const ViTConfig cfg = small_vit(32, 3, 4, Pooling::cls_token);
  const ImageNorm norm = norm_for(3);
  constexpr int B = 4;
  auto backend = make_cpu_backend();
  ViTModel model(cfg, *backend, ModelShape{B, 0}, norm);
  model.init_parameters(test_seed() + 1);
  const fs::path path = temp_dir() / "roundtrip.safetensors";
  save_weights(model, path.string());

  TorchViT ref(cfg, norm);
  ref.load_safetensors(path.string());
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(flat);
  CHECK(ref.flat_params() == flat);

  std::mt19937_64 rng(test_seed());
  const Batch batch = random_batch(cfg, B, cfg.image_size, rng);
  model.upload_batch(batch.images.data(), batch.targets.data(), B);
  model.forward(1.f / B);
  const torch_ref::TorchForward tf = ref.forward(batch.images, batch.targets, B, /*train=*/false);
  const double e = rel_err(model.read_logits(), tf.logits);
  CHECK(e <= 1e-5);
  fs::remove_all(path.parent_path());
}

TEST_CASE("a weights file with a missing, mis-shaped or unknown tensor is refused, naming it", "[torch][safetensors]") {
  const ViTConfig cfg = small_vit(28, 1, 4, Pooling::mean);
  const ImageNorm norm = norm_for(1);
  auto backend = make_cpu_backend();
  ViTModel model(cfg, *backend, ModelShape{2, 0}, norm);
  model.init_parameters(test_seed());
  const fs::path dir = temp_dir();
  save_weights(model, (dir / "good.safetensors").string());
  const SafetensorsFile good = read_safetensors((dir / "good.safetensors").string());
  TorchViT ref(cfg, norm);

  // Each damaged file must be refused by both loaders with the tensor's name.
  const auto refused = [&](const std::string& what, const SafetensorsFile& bad, const std::string& message) {
    CAPTURE(what);
    const std::string path = (dir / (what + ".safetensors")).string();
    write_safetensors(path, bad);
    CHECK_THROWS_WITH(ref.load_safetensors(path), Contains(message));
    CHECK_THROWS_WITH(load_weights(model, path), Contains(message));
  };

  SafetensorsFile missing = good;
  std::erase_if(missing.tensors, [](const NamedTensor& t) { return t.name == "blocks.1.mlp.fc1.bias"; });
  refused("missing", missing, "missing tensor 'blocks.1.mlp.fc1.bias'");

  SafetensorsFile misshaped = good;
  for (NamedTensor& t : misshaped.tensors)
    if (t.name == "head.weight") t.shape = {t.shape[1], t.shape[0]};  // transposed: same numel
  refused("misshaped", misshaped, "tensor 'head.weight' has shape (64,10)");

  SafetensorsFile unknown = good;
  unknown.tensors.push_back(
      NamedTensor{"cls_token", {1, 1, 64}, std::vector<float>(64, 0.f)});  // mean pooling has none
  refused("unknown", unknown, "unexpected tensor 'cls_token'");

  // And the good file still loads.
  CHECK_NOTHROW(ref.load_safetensors((dir / "good.safetensors").string()));
  fs::remove_all(dir);
}

TEST_CASE("the reference's bf16 autocast step stays near its fp32 step", "[torch][bf16]") {
  // The mixed-precision GPU baseline runs this path on CUDA; here it runs on
  // the CPU's autocast, proving the scope engages (results differ) and is sane.
  const ViTConfig cfg = small_vit(28, 1, 4, Pooling::cls_token);
  const ImageNorm norm = norm_for(1);
  constexpr int B = 8;
  auto backend = make_cpu_backend();
  ViTModel model(cfg, *backend, ModelShape{B, 0}, norm);
  model.init_parameters(test_seed());
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(flat);
  TorchViT f32(cfg, norm), bf16(cfg, norm, torch_ref::TorchOptions{.bf16_autocast = true});
  f32.load_flat(flat);
  bf16.load_flat(flat);

  std::mt19937_64 rng(test_seed());
  const Batch batch = random_batch(cfg, B, cfg.image_size, rng);
  const torch_ref::TorchForward a = f32.forward(batch.images, batch.targets, B),
                                b = bf16.forward(batch.images, batch.targets, B);
  f32.backward();
  bf16.backward();
  const double logits_err = rel_err(b.logits, a.logits), grad_err = rel_err(bf16.flat_grads(), f32.flat_grads());
  std::printf("bf16 autocast vs fp32 (reference): logits %.2e, loss %.2e, gradients %.2e\n", logits_err,
              std::abs(b.loss - a.loss) / a.loss, grad_err);
  CHECK(logits_err > 0);
  CHECK(logits_err < 5e-2);
  CHECK(grad_err < 1e-1);
  // The fp32 master weights are what AdamW updates, whatever the forward's precision.
  AdamWHyper hyper;
  hyper.step = 1;
  bf16.optimizer_step(hyper);
  CHECK(bf16.flat_params() != flat);
}
