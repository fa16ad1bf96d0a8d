// zero_ladder.h — predictions of the ZeRO ladder (stages 0-3, activation
// checkpointing on and off) on the paper's 8xT4 nodes and on 8xH100 nodes
// over InfiniBand: step time per stage for ViT-B/16 at 224, and the largest
// of timm's ViT-B/16, L/16, H/14 and g/14 that fits one GPU at each stage.
//
// Hardware figures (datasheets) and what is assumed are kept apart in each
// GpuSpec's `source`; the networks are network_model.cpp's presets, whose
// sources say the same. A GPU's compute is analytic: the model's FLOPs at
// peak × an assumed model-FLOP utilisation (MFU), AdamW at 80% of the memory
// bandwidth (paper_preset.h's assumption), split over layers by FLOPs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/vit_config.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/zero_memory.h"
#include "tools/scaling/zero_timeline.h"

namespace vitscale::scaling {

struct GpuSpec {
  std::string name;        // "T4 (fp16 AMP)"
  double peak_tflops = 0;  // dense, at the training precision
  double mfu = 0;          // assumption: share of the peak the model's GEMMs reach
  double memory_GiB = 0;   // device memory (GB on the datasheet, taken as 1e9 bytes, shown in GiB)
  double usable = 0.9;     // assumption: share of it a run can plan for (context, allocator, fragmentation)
  double hbm_GBps = 0;     // memory bandwidth (the optimizer's pace)
  std::string network;     // network_model.cpp preset
  MemoryBytes bytes;       // precision of weights, gradients and activations
  std::string source;      // datasheet figures and assumptions, named
};
GpuSpec t4_fp16();    // NVIDIA T4: 65 TFLOP/s fp16 tensor, 16 GB GDDR6 320 GB/s, PCIe Gen3; RoCE between nodes
GpuSpec h100_bf16();  // H100 SXM: 989 TFLOP/s bf16 dense, 80 GB HBM3 3.35 TB/s, NVLink 900 GB/s, IB NDR

struct TimmViT {
  std::string name;  // timm's name
  ViTConfig cfg;
};
std::vector<TimmViT> timm_vits();  // B/16, L/16, H/14, g/14 at 224, 1000 classes, in size order

// One GPU's analytic profile of `cfg` at `micro_batch` (gradients in the GPU's precision).
StepProfile gpu_profile(const ViTConfig& cfg, const GpuSpec& gpu, int micro_batch);

struct LadderPoint {
  std::string gpu;
  int world = 1, micro_batch = 0, stage = 0;
  bool checkpointing = false;
  ZeroStepResult step;
  ZeroMemory memory;
};

struct FitPoint {
  std::string gpu;
  int world = 1, micro_batch = 0, stage = 0;
  bool checkpointing = false;
  std::string largest;             // "" when none fits
  std::vector<double> totals_GiB;  // per timm_vits() entry
  double usable_GiB = 0;
};

struct ZeroLadder {
  std::vector<GpuSpec> gpus;
  std::vector<LadderPoint> step_points;  // ViT-B/16 at 224
  std::vector<FitPoint> fit_points;
  std::string settings;  // how the simulator was run, one paragraph
};
// worlds: the GPU counts (8: one node; 64: eight); overlap on, 25 MiB buckets.
ZeroLadder predict_zero_ladder(const std::vector<int>& worlds, int step_micro_batch,
                               const std::vector<int>& fit_micro_batches);

std::string markdown(const ZeroLadder& l);
nlohmann::json to_json(const ZeroLadder& l);

}  // namespace vitscale::scaling
