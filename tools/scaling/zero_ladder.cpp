#include "tools/scaling/zero_ladder.h"

#include <cstdio>
#include <sstream>

#include "runtime/param_table.h"
#include "runtime/vit_flops.h"
#include "tools/scaling/network_model.h"
#include "tools/scaling/paper_preset.h"

namespace vitscale::scaling {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr std::size_t kBucketBytes = 25u << 20;  // PyTorch DDP's default; overlap on
constexpr double kOptimizerBwEfficiency = 0.8;   // paper_preset.h's AdamW assumption

ViTConfig timm_config(int patch, int dim, int depth, int heads, int mlp) {
  return ViTPreset{"", "", 224, patch, dim, depth, heads, mlp}.config(3, 1000);  // RGB, ImageNet-1k head
}

double gib(std::size_t bytes) { return static_cast<double>(bytes) / kGiB; }

constexpr std::int64_t kPersistence = 100000;  // stage3_param_persistence_threshold: vit_train's default

ZeroOptions ladder_zero(int stage, bool checkpointing, int param_bytes) {
  ZeroOptions z;
  z.stage = stage;
  z.checkpointing = checkpointing;
  z.param_bytes = param_bytes;
  z.persistence_elements = kPersistence;
  return z;
}

ZeroMemoryOptions ladder_memory(int stage, bool checkpointing, int world, int micro, const MemoryBytes& bytes) {
  ZeroMemoryOptions m;
  m.stage = stage;
  m.checkpointing = checkpointing;
  m.world = world;
  m.micro_batch = micro;
  m.bytes = bytes;
  m.bucket_bytes = kBucketBytes;
  m.persistence_elements = kPersistence;
  return m;
}

StepOptions ladder_options(int world) {
  StepOptions o;
  o.world = world;
  o.overlap = true;
  o.bucket_bytes = kBucketBytes;
  return o;
}

}  // namespace

GpuSpec t4_fp16() {
  GpuSpec g;
  g.name = "T4 (fp16 AMP)";
  g.peak_tflops = 65;
  g.mfu = 0.25;
  g.memory_GiB = 16e9 / kGiB;
  g.hbm_GBps = 320;
  g.network = "t4-node";
  g.bytes = MemoryBytes::mixed();
  g.source =
      "NVIDIA T4 datasheet: 65 TFLOP/s fp16/fp32-accumulate tensor (mixed precision), 16 GB GDDR6 at 320 GB/s, "
      "PCIe Gen3 x16, 70 W. Assumed: 25% MFU (a 70 W part holds its boost clock poorly under tensor load); "
      "90% of the memory usable. Network: the paper's nodes, 8 per node on PCIe, RoCE between nodes "
      "(25 GbE assumed, network_model.cpp)";
  return g;
}

GpuSpec h100_bf16() {
  GpuSpec g;
  g.name = "H100 SXM (bf16 AMP)";
  g.peak_tflops = 989;
  g.mfu = 0.40;
  g.memory_GiB = 80e9 / kGiB;
  g.hbm_GBps = 3350;
  g.network = "dgx-h100";
  g.bytes = MemoryBytes::mixed();
  g.source =
      "NVIDIA H100 SXM datasheet: 989 TFLOP/s bf16 dense (1,979 with sparsity), 80 GB HBM3 at 3.35 TB/s, NVLink4 "
      "900 GB/s per GPU (NCCL's model: 370.8 GB/s bus bandwidth), DGX H100: one 400 Gb/s NDR InfiniBand NIC per "
      "GPU. Assumed: 40% MFU; 90% of the memory usable; NCCL reaches 90% of the IB line rate";
  return g;
}

std::vector<TimmViT> timm_vits() {
  // timm vision_transformer.py: vit_base_patch16_224, vit_large_patch16_224,
  // vit_huge_patch14_224, vit_giant_patch14_224 (mlp_ratio 48/11: 6144).
  return {{"ViT-B/16", timm_config(16, 768, 12, 12, 3072)},
          {"ViT-L/16", timm_config(16, 1024, 24, 16, 4096)},
          {"ViT-H/14", timm_config(14, 1280, 32, 16, 5120)},
          {"ViT-g/14", timm_config(14, 1408, 40, 16, 6144)}};
}

StepProfile gpu_profile(const ViTConfig& cfg, const GpuSpec& gpu, int micro_batch) {
  std::int64_t n = 0;
  param_extents(cfg, &n);
  // Fused AdamW in mixed precision: read fp32 master, m, v and the gradient,
  // write the three back and the low-precision copy: 28 bytes per parameter.
  const double opt = 28.0 * static_cast<double>(n) / (gpu.hbm_GBps * 1e9 * kOptimizerBwEfficiency);
  const double compute = micro_batch * vit_flops(cfg).training() / (gpu.peak_tflops * 1e12 * gpu.mfu);
  AnalyticOptions a;
  a.micro_batch = micro_batch;
  a.optimizer_s = opt;
  a.images_per_s = micro_batch / (compute + opt);
  a.source = gpu.name + ": " + std::to_string(gpu.peak_tflops) + " TFLOP/s x MFU " + std::to_string(gpu.mfu);
  StepProfile p = analytic_profile(cfg, a);
  p.grad_bytes = gpu.bytes.grad;
  return p;
}

ZeroLadder predict_zero_ladder(const std::vector<int>& worlds, int step_micro, const std::vector<int>& fit_micros) {
  ZeroLadder l;
  l.gpus = {t4_fp16(), h100_bf16()};
  // The paper's own precision beside them: fp32 on a T4, calibrated to its 1-GPU epoch.
  GpuSpec t4_fp32 = t4_fp16();
  t4_fp32.name = "T4 (fp32, as the paper ran)";
  t4_fp32.bytes = MemoryBytes::fp32();
  t4_fp32.source =
      "compute calibrated to the paper's 1,817.65 s per CIFAR-10 epoch on one T4 (paper_preset.h); "
      "fp32 weights, gradients and activations; network as T4 (fp16 AMP)";
  const PaperSetup paper;
  const auto vits = timm_vits();
  const ViTConfig& b16 = vits[0].cfg;

  for (const GpuSpec* g : {&l.gpus[0], &t4_fp32, &l.gpus[1]}) {
    const bool calibrated = g == &t4_fp32;
    const StepProfile prof =
        calibrated ? paper_profile(paper, 1000).at_batch(step_micro) : gpu_profile(b16, *g, step_micro);
    NetworkModel net = network_preset(g->network);
    net.algo = AllReduceAlgo::best;
    for (int w : worlds)
      for (int stage = 0; stage <= 3; ++stage)
        for (bool ckpt : {false, true}) {
          l.step_points.push_back(
              LadderPoint{g->name, w, step_micro, stage, ckpt,
                          simulate_zero_step(prof, net, ladder_options(w), ladder_zero(stage, ckpt, g->bytes.param)),
                          zero_memory(b16, ladder_memory(stage, ckpt, w, step_micro, g->bytes))});
        }
  }
  for (const GpuSpec& g : l.gpus)
    for (int w : worlds)
      for (int micro : fit_micros)
        for (int stage = 0; stage <= 3; ++stage)
          for (bool ckpt : {false, true}) {
            FitPoint f{g.name, w, micro, stage, ckpt, "", {}, g.memory_GiB * g.usable};
            for (const auto& v : vits) {
              const double t = gib(zero_memory(v.cfg, ladder_memory(stage, ckpt, w, micro, g.bytes)).total());
              f.totals_GiB.push_back(t);
              if (t <= f.usable_GiB) f.largest = v.name;
            }
            l.fit_points.push_back(f);
          }
  char s[600];
  std::snprintf(
      s, sizeof s,
      "simulate_zero_step (tools/scaling/zero_timeline.h) and zero_memory (zero_memory.h); overlap_comm on, "
      "reduce_bucket_size 25 MiB, stage 3 as parallel/zero3_params.h (prefetch one group ahead, groups of at most "
      "100,000 elements persistent, the head kept from forward to backward); step-time micro-batch %d per GPU; "
      "models at 224x224 with 1,000 classes (timm's heads); NCCL algorithm: the cheapest of ring, tree and "
      "hierarchical for each collective (reduce-scatter and all-gather: half an all-reduce)",
      step_micro);
  l.settings = s;
  return l;
}

std::string markdown(const ZeroLadder& l) {
  std::ostringstream o;
  char line[400];
  o << "Settings: " << l.settings << ".\n\nHardware and assumptions:\n\n";
  for (const auto& g : l.gpus) o << "- **" << g.name << "**: " << g.source << ".\n";
  o << "\ntimm's configurations (224x224; tokens = (224/patch)^2 + 1):\n\n"
       "| model | patch | depth | width | heads | MLP | parameters |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: "
       "|\n";
  for (const auto& v : timm_vits()) {
    std::snprintf(line, sizeof line, "| %s | %d | %d | %d | %d | %d | %.1f M |\n", v.name.c_str(), v.cfg.patch_size,
                  v.cfg.depth, v.cfg.dim, v.cfg.heads, v.cfg.mlp_dim,
                  static_cast<double>(ParamTable(v.cfg).total_numel()) / 1e6);
    o << line;
  }
  o << "\n## Step time per stage, ViT-B/16 at 224\n\n"
       "| GPU | GPUs | stage | step | exposed comm | sent/GPU | memory/GPU | step (ckpt) | recompute | memory (ckpt) "
       "|\n"
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (std::size_t i = 0; i + 1 < l.step_points.size(); i += 2) {
    const LadderPoint &a = l.step_points[i], &c = l.step_points[i + 1];
    std::snprintf(line, sizeof line,
                  "| %s | %d | %d | %.1f ms | %.1f ms | %.0f MB | %.2f GiB | %.1f ms | %.1f ms | %.2f GiB |\n",
                  a.gpu.c_str(), a.world, a.stage, 1e3 * a.step.step_s, 1e3 * a.step.exposed_s, a.step.sent_bytes / 1e6,
                  gib(a.memory.total()), 1e3 * c.step.step_s, 1e3 * c.step.recompute_s, gib(c.memory.total()));
    o << line;
  }
  o << "\n## Largest timm ViT that fits one GPU\n\n"
       "| GPU | GPUs | micro-batch | usable | stage 0 | stage 0 + ckpt | stage 1 | stage 1 + ckpt | stage 2 | "
       "stage 2 + ckpt | stage 3 | stage 3 + ckpt |\n| --- | ---: | ---: | ---: |"
       " --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (std::size_t i = 0; i + 7 < l.fit_points.size(); i += 8) {
    const FitPoint& f = l.fit_points[i];
    std::snprintf(line, sizeof line, "| %s | %d | %d | %.1f GiB |", f.gpu.c_str(), f.world, f.micro_batch,
                  f.usable_GiB);
    o << line;
    for (std::size_t k = i; k < i + 8; ++k)
      o << " " << (l.fit_points[k].largest.empty() ? "none" : l.fit_points[k].largest) << " |";
    o << "\n";
  }
  o << "\nPer-GPU memory (GiB) of each model, from which the table above is read, is in zero_ladder.json "
       "(`fit[].totals_GiB`, in the order B/16, L/16, H/14, g/14).\n";
  return o.str();
}

nlohmann::json to_json(const ZeroLadder& l) {
  nlohmann::json j = {{"schema", "vitscale.zero_ladder/1"}, {"settings", l.settings}};
  for (const auto& g : l.gpus)
    j["gpus"].push_back({{"name", g.name},
                         {"peak_tflops", g.peak_tflops},
                         {"mfu_assumed", g.mfu},
                         {"memory_GiB", g.memory_GiB},
                         {"usable_assumed", g.usable},
                         {"memory_GBps", g.hbm_GBps},
                         {"network", g.network},
                         {"source", g.source}});
  for (const auto& v : timm_vits())
    j["models"].push_back({{"name", v.name},
                           {"patch", v.cfg.patch_size},
                           {"depth", v.cfg.depth},
                           {"width", v.cfg.dim},
                           {"heads", v.cfg.heads},
                           {"mlp", v.cfg.mlp_dim},
                           {"parameters", ParamTable(v.cfg).total_numel()}});
  for (const auto& p : l.step_points)
    j["step"].push_back({{"gpu", p.gpu},
                         {"world", p.world},
                         {"micro_batch", p.micro_batch},
                         {"stage", p.stage},
                         {"checkpointing", p.checkpointing},
                         {"step_s", p.step.step_s},
                         {"compute_s", p.step.compute_s},
                         {"recompute_s", p.step.recompute_s},
                         {"exposed_s", p.step.exposed_s},
                         {"comm_s", p.step.comm_s},
                         {"sent_bytes", p.step.sent_bytes},
                         {"memory_bytes",
                          {{"parameters", p.memory.params},
                           {"gradients", p.memory.grads},
                           {"optimizer", p.memory.optimizer},
                           {"activations", p.memory.activations},
                           {"working", p.memory.working},
                           {"total", p.memory.total()}}}});
  for (const auto& f : l.fit_points)
    j["fit"].push_back({{"gpu", f.gpu},
                        {"world", f.world},
                        {"micro_batch", f.micro_batch},
                        {"stage", f.stage},
                        {"checkpointing", f.checkpointing},
                        {"usable_GiB", f.usable_GiB},
                        {"totals_GiB", f.totals_GiB},
                        {"largest", f.largest.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.largest)}});
  return j;
}

}  // namespace vitscale::scaling
