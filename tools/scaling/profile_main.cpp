// vit_scaling_profile — measures one rank's step, part by part, for the simulator.
//
// Builds the model on one backend, feeds it random images, and times forward,
// each part of the backward (between two of the model's grads_ready_from
// calls: exactly when the reducer would learn that a bucket is final) and the
// optimizer. Medians over --steps timed steps after --warmup, at each
// --micro-batch given; writes one profile JSON per micro-batch
// (OUT with "-b<batch>" before ".json" when several are given).
//
//   vit_scaling_profile --image-size 32 --channels 3 --patch-size 4 --dim 128 --depth 4
//       --heads 4 --mlp-dim 256 --classes 10 --micro-batch 32 --threads 1 --out prof.json   (one line)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/adamw_optimizer.h"
#include "runtime/backend.h"
#include "runtime/buffer.h"
#include "runtime/vit_model.h"
#include "tools/scaling/profile.h"
#ifdef VITSCALE_HAVE_CUDA
#include "runtime/cuda_backend.h"
#endif

namespace vs = vitscale::scaling;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Stamps the time of each grads_ready_from call (after the device finished the work before it).
class StampingListener final : public vitscale::GradReadyListener {
 public:
  StampingListener(vitscale::Backend& be, Clock::time_point& start) : be_(be), start_(start) {}
  void grads_ready_from(std::int64_t offset) override {
    be_.synchronize();
    stamps.push_back({offset, seconds_since(start_)});
  }
  struct Stamp {
    std::int64_t offset;
    double t;
  };
  std::vector<Stamp> stamps;

 private:
  vitscale::Backend& be_;
  Clock::time_point& start_;
};

std::string out_name(const std::string& out, int batch, bool several) {
  if (!several) return out;
  const auto dot = out.rfind(".json");
  const std::string tag = "-b" + std::to_string(batch);
  return dot == std::string::npos ? out + tag : out.substr(0, dot) + tag + ".json";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vit_scaling_profile: one rank's step, part by part, for vit_scaling_sim"};
  vitscale::ViTConfig cfg;
  std::vector<int> batches{32};
  int threads = 0, steps = 10, warmup = 3, source_size = 0;
  std::string device = "cpu", out = "profile.json", pooling = "cls";
  app.add_option("--image-size", cfg.image_size, "model input side");
  app.add_option("--source-image-size", source_size, "loader image side (0: the model's; else resized)");
  app.add_option("--channels", cfg.channels, "image channels");
  app.add_option("--patch-size", cfg.patch_size, "patch side");
  app.add_option("--dim", cfg.dim, "width D");
  app.add_option("--depth", cfg.depth, "blocks L");
  app.add_option("--heads", cfg.heads, "attention heads");
  app.add_option("--mlp-dim", cfg.mlp_dim, "MLP width");
  app.add_option("--classes", cfg.num_classes, "classes K");
  app.add_option("--pooling", pooling, "cls or mean")->check(CLI::IsMember({"cls", "mean"}));
  app.add_option("--micro-batch", batches, "micro-batch(es) to profile, e.g. 16,32")->delimiter(',');
  app.add_option("--threads", threads, "CPU backend threads (0: OpenMP's default)");
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--out", out, "profile JSON");
  CLI11_PARSE(app, argc, argv);
  try {
    cfg.pooling = pooling == "cls" ? vitscale::Pooling::cls_token : vitscale::Pooling::mean;
    cfg.validate();
    std::unique_ptr<vitscale::Backend> be;
    if (device == "cpu") {
      be = vitscale::make_cpu_backend(threads);
    } else {
#ifdef VITSCALE_HAVE_CUDA
      be = vitscale::make_cuda_backend(0, vitscale::DType::f32, true);
#else
      throw std::invalid_argument("--device cuda: this build has no CUDA");
#endif
    }
    const int src = source_size > 0 ? source_size : cfg.image_size;
    for (int batch : batches) {
      if (batch < 1) throw std::invalid_argument("--micro-batch must be >= 1");
      vitscale::ImageNorm norm;
      norm.channels = cfg.channels;
      vitscale::ViTModel model(cfg, *be, vitscale::ModelShape{batch, src}, norm);
      model.init_parameters(1);
      vitscale::AdamWOptimizer opt(*be, model.table());
      std::mt19937 rng(7);
      std::vector<std::uint8_t> images(static_cast<std::size_t>(batch) * cfg.channels * src * src);
      std::vector<float> targets(static_cast<std::size_t>(batch) * cfg.num_classes, 0.f);
      for (auto& x : images) x = static_cast<std::uint8_t>(rng() & 255u);
      for (int i = 0; i < batch; ++i)
        targets[static_cast<std::size_t>(i * cfg.num_classes + i % cfg.num_classes)] = 1.f;

      std::vector<double> t_input, t_fwd, t_opt, t_zero;
      std::vector<std::vector<double>> t_seg;
      std::vector<std::int64_t> offsets;
      vitscale::AdamWHyper hyper;
      hyper.max_grad_norm = 1.0f;
      for (int s = 0; s < warmup + steps; ++s) {
        auto t0 = Clock::now();
        model.zero_grads();
        be->synchronize();
        const double zero = seconds_since(t0);
        t0 = Clock::now();
        model.upload_batch(images.data(), targets.data(), batch);
        be->synchronize();
        const double input = seconds_since(t0);
        t0 = Clock::now();
        model.forward(1.0f / batch);
        be->synchronize();
        const double fwd = seconds_since(t0);
        Clock::time_point bstart = Clock::now();
        StampingListener listener(*be, bstart);
        model.backward(&listener);
        t0 = Clock::now();
        hyper.step = s + 1;
        opt.step(model.params(), model.grads(), hyper);
        model.sync_compute_params();
        be->synchronize();
        const double o = seconds_since(t0);
        if (s < warmup) continue;
        t_zero.push_back(zero);
        t_input.push_back(input);
        t_fwd.push_back(fwd);
        t_opt.push_back(o);
        if (t_seg.empty()) {
          t_seg.resize(listener.stamps.size());
          for (const auto& st : listener.stamps) offsets.push_back(st.offset);
        }
        double prev = 0;
        for (std::size_t i = 0; i < listener.stamps.size(); ++i) {
          t_seg[i].push_back(listener.stamps[i].t - prev);
          prev = listener.stamps[i].t;
        }
      }
      // The compute stream's copy rate (vitscale::scaling::StepProfile::copy_bytes_per_s):
      // the flat gradient buffer, just written by the last backward, copied
      // whole into a buffer of its size, as ZeRO's local copies move it.
      std::vector<double> t_copy;
      {
        const vitscale::TensorView grads = model.grads();
        vitscale::Buffer scratch = be->allocate(grads.bytes(), "copy-rate scratch");
        for (int s = 0; s <= std::max(steps, 3); ++s) {  // the first copy touches the scratch's pages: untimed
          const auto t0 = Clock::now();
          be->copy_device(scratch.get(), grads.data, grads.bytes());
          be->synchronize();
          if (s > 0) t_copy.push_back(seconds_since(t0));
        }
      }
      vs::StepProfile p;
      p.micro_batch = batch;
      p.copy_bytes_per_s = static_cast<double>(model.grads().bytes()) / median(t_copy);
      p.input_s = median(t_input);
      p.forward_s = median(t_fwd);
      p.optimizer_s = median(t_opt);
      p.step_overhead_s = median(t_zero);
      p.params = vs::param_extents(cfg, &p.total_elements);
      const auto labels = vs::backward_segments(cfg);
      for (std::size_t i = 0; i < t_seg.size(); ++i) {
        const std::string label =
            i < labels.size() && labels[i].ready_from == offsets[i] ? labels[i].label : "part" + std::to_string(i);
        p.backward.push_back({label, median(t_seg[i]), offsets[i]});
      }
      char src_text[300];
      std::snprintf(src_text, sizeof src_text,
                    "measured: vit_scaling_profile on %s, %s, micro-batch %d, median of %d steps", be->name().c_str(),
                    cfg.describe().c_str(), batch, steps);
      p.source = src_text;
      p.validate();
      const std::string path = out_name(out, batch, batches.size() > 1);
      vs::save_profile(p, path);
      std::printf("%s: forward %.2f ms, backward %.2f ms (%zu parts), optimizer %.2f ms, copies %.1f GB/s -> %s\n",
                  src_text, 1e3 * p.forward_s, 1e3 * p.backward_s(), p.backward.size(), 1e3 * p.optimizer_s,
                  1e-9 * p.copy_bytes_per_s, path.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_scaling_profile: %s\n", e.what());
    return 1;
  }
}
