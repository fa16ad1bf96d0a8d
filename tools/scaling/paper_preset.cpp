#include "tools/scaling/paper_preset.h"

#include <cstdio>
#include <sstream>

namespace vitscale::scaling {

ViTConfig vit_b16_224(int num_classes) { return vit_preset("vit-b16-224").config(3, num_classes); }

double paper_optimizer_s(const PaperSetup& s, int num_classes) {
  std::int64_t n = 0;
  param_extents(vit_b16_224(num_classes), &n);
  // One fused AdamW pass (DeepSpeed's FusedAdam): read parameter, gradient and
  // both moments, write parameter and both moments: 7 fp32 values per parameter.
  const double bytes = 28.0 * static_cast<double>(n);
  return bytes / (s.t4_memory_GBps * 1e9 * s.optimizer_bw_efficiency);
}

StepProfile paper_profile(const PaperSetup& s, int num_classes) {
  const double opt = paper_optimizer_s(s, num_classes);
  // Per-image compute c such that ceil(N / m) optimizer steps and N images
  // take the published epoch: N·c + steps·opt = epoch.
  const std::int64_t steps = (s.train_images + s.micro_batch - 1) / s.micro_batch;
  const double per_image = (s.epoch_s_one_t4 - static_cast<double>(steps) * opt) / static_cast<double>(s.train_images);
  AnalyticOptions a;
  a.micro_batch = s.micro_batch;
  a.optimizer_s = opt;
  a.images_per_s = s.micro_batch / (s.micro_batch * per_image + opt);
  char src[200];
  std::snprintf(src, sizeof src, "published: %.2f s per CIFAR-10 epoch on one T4", s.epoch_s_one_t4);
  a.source = src;
  return analytic_profile(vit_b16_224(num_classes), a);
}

NetworkModel paper_network(const PaperSetup& s, int ranks_per_node) {
  NetworkModel n = network_preset(s.ethernet == "roce-25g" ? "t4-node" : "t4-node-100g");
  n.ranks_per_node = ranks_per_node;
  n.algo = AllReduceAlgo::best;  // NCCL picks its algorithm by the same kind of cost model
  return n;
}

RunConfig deepspeed_as_run(const PaperSetup& s, int world) {
  RunConfig rc;
  rc.world = world;
  rc.micro_batch = s.micro_batch;
  rc.overlap = false;
  rc.bucket_bytes = s.deepspeed_bucket_bytes;
  return rc;
}

namespace {

double strong_speedup(const StepProfile& prof, const NetworkModel& net, RunConfig rc, std::int64_t images, int world) {
  return strong_fixed_dataset(prof, net, rc, images, {1, world}).back().speedup;
}

}  // namespace

std::vector<ValidationRow> validate_paper(const PaperSetup& s) {
  const StepProfile c10 = paper_profile(s, 10), c100 = paper_profile(s, 100);
  const NetworkModel node = paper_network(s, 8), one_per_node = paper_network(s, 1);
  const RunConfig ds = deepspeed_as_run(s, 1);
  std::vector<ValidationRow> rows;
  const std::string eth = s.ethernet == "roce-25g" ? "RoCE 25 GbE" : "RoCE 100 GbE";

  rows.push_back({"1 T4, CIFAR-10 epoch, micro-batch 64", "calibration: fixes the per-image compute", s.epoch_s_one_t4,
                  predict_epoch_s(c10, node, ds, s.train_images), "s", "calibration input (error 0 by construction)"});
  rows.push_back({"strong scaling 1->8 T4, one node (CIFAR-10)", "8 ranks on PCIe, ring, no overlap, 1 bucket", 7.76,
                  strong_speedup(c10, node, ds, s.train_images, 8), "x", "primary"});
  rows.push_back({"strong scaling 1->32 nodes x 1 T4 (CIFAR-100)", "32 ranks over " + eth + ", ring, no overlap", 29.6,
                  strong_speedup(c100, one_per_node, ds, s.train_images, 32), "x", "primary"});

  // Weak scaling, 10% of the training set per GPU. Read as "micro-batch 64 on
  // every rank" it would cost per step exactly what the 7.76x run cost, and
  // cannot reach 84% while that run reached 97% (docs/scaling.md). DeepSpeed
  // derives the micro-batch from train_batch_size / world when only the global
  // batch is given; with the global batch held at 64 each of 8 ranks takes 8.
  const std::int64_t tenth = s.train_images / 10;
  {
    RunConfig one = ds, eight = ds;
    eight.world = 8;
    eight.micro_batch = s.micro_batch / 8;
    const double e1 = predict_epoch_s(c10, node, one, tenth), e8 = predict_epoch_s(c10, node, eight, tenth * 8);
    rows.push_back({"weak scaling efficiency at 8 GPUs, 10% of CIFAR-10 per GPU",
                    "one node; global batch 64 kept (micro-batch 64/p)", 84.0, 100.0 * e1 / e8, "%",
                    "primary (reading b: DeepSpeed's train_batch_size derivation)"});
    const auto weak = weak_scaling(c10, node, ds, tenth, {1, 8});
    rows.push_back({"weak scaling efficiency at 8 GPUs, 10% of CIFAR-10 per GPU", "one node; micro-batch 64 per rank",
                    84.0, 100.0 * weak.back().efficiency, "%",
                    "reading a: inconsistent with the 7.76x figure (same step cost)"});
  }
  // Secondary figures: "at 8 GPUs the speed-up was 5.91x at batch 16 and 7.41x at batch 64".
  for (int m : {16, 64}) {
    RunConfig rc = ds;
    rc.micro_batch = m;
    const double published = m == 16 ? 5.91 : 7.41;
    rows.push_back({"8 GPUs, micro-batch " + std::to_string(m), "8 nodes x 1 T4 over " + eth, published,
                    strong_speedup(c10, one_per_node, rc, s.train_images, 8), "x", "secondary"});
    rows.push_back({"8 GPUs, micro-batch " + std::to_string(m), "1 node x 8 T4 (PCIe)", published,
                    strong_speedup(c10, node, rc, s.train_images, 8), "x", "secondary"});
  }
  // The Ethernet speed is not published: the other choice, for comparison.
  {
    PaperSetup other = s;
    other.ethernet = s.ethernet == "roce-25g" ? "roce-100g" : "roce-25g";
    rows.push_back({"strong scaling 1->32 nodes x 1 T4 (CIFAR-100)",
                    std::string("32 ranks over ") + (other.ethernet == "roce-25g" ? "RoCE 25 GbE" : "RoCE 100 GbE"),
                    29.6, strong_speedup(c100, paper_network(other, 1), ds, s.train_images, 32), "x",
                    "alternative Ethernet speed"});
  }
  return rows;
}

std::vector<WhatIfRow> paper_what_if(const PaperSetup& s) {
  const StepProfile prof = paper_profile(s, 10);
  struct Machine {
    const char* name;
    int per_node, world;
  };
  const Machine machines[] = {{"1 node x 8 T4", 8, 8},    {"8 nodes x 1 T4", 1, 8},  {"32 nodes x 1 T4", 1, 32},
                              {"2 nodes x 8 T4", 8, 16},  {"4 nodes x 8 T4", 8, 32}, {"8 nodes x 8 T4", 8, 64},
                              {"16 nodes x 8 T4", 8, 128}};
  std::vector<WhatIfRow> out;
  for (const auto& m : machines) {
    const NetworkModel net = paper_network(s, m.per_node);
    WhatIfRow r;
    r.machine = m.name;
    r.world = m.world;
    RunConfig rc = deepspeed_as_run(s, 1);
    // Per-step throughput scaling at micro-batch 64 (the epoch of 50,000 images
    // is too short at 128 ranks for epoch times to mean much).
    const double t1 = predict_step(prof, net, rc).step_s;
    auto speedup = [&](const RunConfig& c) { return m.world * t1 / predict_step(prof, net, c).step_s; };
    rc.world = m.world;
    r.deepspeed_speedup = speedup(rc);
    r.deepspeed_exposed_s = predict_step(prof, net, rc).exposed_s;
    rc.overlap = true;
    r.overlap_one_bucket = speedup(rc);
    rc.bucket_bytes = 25u << 20;
    r.overlap_25mib = speedup(rc);
    const auto sweep = sweep_buckets(prof, net, rc, default_bucket_candidates());
    r.best_bucket_bytes = recommend_bucket(sweep);
    rc.bucket_bytes = r.best_bucket_bytes;
    r.overlap_best = speedup(rc);
    r.best_exposed_s = predict_step(prof, net, rc).exposed_s;
    out.push_back(r);
  }
  return out;
}

std::string markdown(const std::vector<ValidationRow>& rows) {
  std::ostringstream s;
  s << "| paper figure | simulated as | published | predicted | error | role |\n"
       "| --- | --- | ---: | ---: | ---: | --- |\n";
  char line[600];
  for (const auto& r : rows) {
    const char* fmt = r.unit == "s"   ? "| %s | %s | %.2f s | %.2f s | %+.1f%% | %s |\n"
                      : r.unit == "%" ? "| %s | %s | %.1f%% | %.1f%% | %+.1f%% | %s |\n"
                                      : "| %s | %s | %.2fx | %.2fx | %+.1f%% | %s |\n";
    std::snprintf(line, sizeof line, fmt, r.figure.c_str(), r.setting.c_str(), r.published, r.predicted,
                  100.0 * r.error(), r.note.c_str());
    s << line;
  }
  return s.str();
}

std::string markdown(const std::vector<WhatIfRow>& rows) {
  std::ostringstream s;
  s << "| machine | GPUs | DeepSpeed as run | overlap, one 5e8 bucket | overlap, 25 MiB | overlap, recommended "
       "| recommended bucket | exposed comm/step as run | exposed, recommended |\n"
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  char line[600];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "| %s | %d | %.2fx | %.2fx | %.2fx | %.2fx | %.0f MiB | %.1f ms | %.1f ms |\n",
                  r.machine.c_str(), r.world, r.deepspeed_speedup, r.overlap_one_bucket, r.overlap_25mib,
                  r.overlap_best, static_cast<double>(r.best_bucket_bytes) / (1 << 20), 1e3 * r.deepspeed_exposed_s,
                  1e3 * r.best_exposed_s);
    s << line;
  }
  return s.str();
}

std::string csv(const std::vector<ValidationRow>& rows) {
  std::ostringstream s;
  s << "figure,setting,published,predicted,unit,error_pct,role\n";
  for (const auto& r : rows)
    s << '"' << r.figure << "\",\"" << r.setting << "\"," << r.published << ',' << r.predicted << ',' << r.unit << ','
      << 100.0 * r.error() << ",\"" << r.note << "\"\n";
  return s.str();
}

std::string csv(const std::vector<WhatIfRow>& rows) {
  std::ostringstream s;
  s << "machine,world,deepspeed_speedup,overlap_one_bucket,overlap_25mib,overlap_recommended,recommended_bucket_bytes,"
       "deepspeed_exposed_s,recommended_exposed_s\n";
  for (const auto& r : rows)
    s << '"' << r.machine << "\"," << r.world << ',' << r.deepspeed_speedup << ',' << r.overlap_one_bucket << ','
      << r.overlap_25mib << ',' << r.overlap_best << ',' << r.best_bucket_bytes << ',' << r.deepspeed_exposed_s << ','
      << r.best_exposed_s << '\n';
  return s.str();
}

}  // namespace vitscale::scaling
