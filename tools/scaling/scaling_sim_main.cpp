// vit_scaling_sim — predicts data-parallel step time, exposed communication
// and scaling efficiency from one rank's profile and a network model.
//
//   vit_scaling_sim --preset paper-t4 [--out-dir DIR]
//       the paper's setup: predicted vs published table, and what overlap and
//       bucket sizing would have given on the same hardware
//   vit_scaling_sim --profile prof.json --network dgx-h100 --world 1,8,64 --micro-batch 64
//   vit_scaling_sim --profile prof.json --network-json cpu.json --world 2 --overlap off --json -
//   vit_scaling_sim --profile prof.json --network dgx-h100 --world 64 --sweep-buckets
//   vit_scaling_sim --profile prof.json --network-json cpu.json --world 2 --zero-stage 3 --activation-checkpointing
//   vit_scaling_sim --preset zero-ladder [--out-dir DIR]
//       ZeRO stages 0-3 x checkpointing on 8xT4 and 8xH100 nodes: ViT-B/16 step
//       times, and the largest timm ViT that fits (zero_ladder.md / .json)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/scaling/network_model.h"
#include "tools/scaling/paper_preset.h"
#include "tools/scaling/profile.h"
#include "tools/scaling/scaling_study.h"
#include "tools/scaling/timeline.h"
#include "tools/scaling/zero_ladder.h"
#include "tools/scaling/zero_memory.h"
#include "tools/scaling/zero_timeline.h"

namespace vs = vitscale::scaling;

namespace {

struct Args {
  std::string preset, profile, network = "dgx-h100", network_json, algo, out_dir, json_out, mode = "step",
                               overlap = "on", mpi_progress;
  std::vector<int> worlds{1};
  int micro_batch = 0, global_batch = 0, accumulation = 1, ranks_per_node = 0, cpu_cores = 0, zero_stage = -1;
  bool checkpointing = false, reduce_every_micro_step = false;
  long long persistence = 100000;  // stage3_param_persistence_threshold (vit_train's default)
  std::vector<int> memory_of;      // image, channels, patch, dim, depth, heads, mlp, classes
  double bucket_mb = 25, first_bucket_mb = 0, jitter_cv = 0;
  long long images = 0;
  bool sweep = false;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
  out << text;
}

// --json DEST: a file, or "-" for stdout; nothing without it.
void emit_json(const std::string& dest, const nlohmann::json& out) {
  if (dest.empty()) return;
  if (dest == "-")
    std::cout << out.dump(1) << "\n";
  else
    write_file(dest, out.dump(1) + "\n");
}

nlohmann::json step_json(const vs::RunConfig& rc, const vs::StepResult& r) {
  return {{"world", rc.world},
          {"micro_batch", rc.micro_batch},
          {"accumulation", rc.accumulation},
          {"global_batch", rc.global_batch()},
          {"overlap", rc.overlap},
          {"bucket_bytes", rc.bucket_bytes},
          {"oversubscribed", rc.oversubscribed()},
          {"step_s", r.step_s},
          {"compute_s", r.compute_s},
          {"comm_s", r.comm_s},
          {"exposed_s", r.exposed_s},
          {"optimizer_s", r.optimizer_s},
          {"overlap_ratio", r.overlap_ratio()},
          {"buckets", r.buckets.size()},
          {"images_per_s", rc.global_batch() / r.step_s}};
}

int run_paper(const Args& a) {
  vs::PaperSetup setup;
  const auto rows = vs::validate_paper(setup);
  const auto what_if = vs::paper_what_if(setup);
  const vs::StepProfile prof = vs::paper_profile(setup, 10);
  std::printf("# The paper's DeepSpeed setup, simulated\n\n");
  std::printf("profile: %s\n", prof.source.c_str());
  std::printf("  forward %.1f ms, backward %.1f ms, optimizer %.1f ms per step of %d images\n", 1e3 * prof.forward_s,
              1e3 * prof.backward_s(), 1e3 * prof.optimizer_s, prof.micro_batch);
  std::printf("network (one node): %s\nnetwork (one GPU per node): %s\n\n",
              vs::paper_network(setup, 8).describe().c_str(), vs::paper_network(setup, 1).describe().c_str());
  std::printf("## Predicted vs published\n\n%s\n", vs::markdown(rows).c_str());
  std::printf("## What overlap and bucket sizing would have given (throughput speed-up at micro-batch 64)\n\n%s\n",
              vs::markdown(what_if).c_str());

  // Scaling to 1024 GPUs on 8-T4 nodes: as run, and with overlap and the recommended bucket.
  const vs::NetworkModel net = vs::paper_network(setup, 8);
  vs::RunConfig ds = vs::deepspeed_as_run(setup, 1), ours = ds;
  ours.overlap = true;
  vs::RunConfig at_64 = ours;  // the bucket recommended for 8 nodes of 8 serves the whole range
  at_64.world = 64;
  ours.bucket_bytes = vs::recommend_bucket(vs::sweep_buckets(prof, net, at_64, vs::default_bucket_candidates()));
  const auto w = vs::powers_of_two(1024);
  const auto as_run = vs::weak_scaling(prof, net, ds, 0, w);
  const auto with_overlap = vs::weak_scaling(prof, net, ours, 0, w);
  std::string table = "| GPUs | nodes | as run: speed-up | efficiency | exposed/step | overlap + " +
                      std::to_string(ours.bucket_bytes >> 20) +
                      " MiB buckets: speed-up | efficiency | exposed/step |\n"
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  std::string csv =
      "world,nodes,asrun_speedup,asrun_efficiency,asrun_exposed_s,ours_speedup,ours_efficiency,ours_exposed_s\n";
  for (std::size_t i = 0; i < w.size(); ++i) {
    char line[300];
    std::snprintf(line, sizeof line, "| %d | %d | %.1fx | %.1f%% | %.0f ms | %.1fx | %.1f%% | %.0f ms |\n", w[i],
                  net.nodes(w[i]), as_run[i].speedup, 100 * as_run[i].efficiency, 1e3 * as_run[i].step.exposed_s,
                  with_overlap[i].speedup, 100 * with_overlap[i].efficiency, 1e3 * with_overlap[i].step.exposed_s);
    table += line;
    std::snprintf(line, sizeof line, "%d,%d,%g,%g,%g,%g,%g,%g\n", w[i], net.nodes(w[i]), as_run[i].speedup,
                  as_run[i].efficiency, as_run[i].step.exposed_s, with_overlap[i].speedup, with_overlap[i].efficiency,
                  with_overlap[i].step.exposed_s);
    csv += line;
  }
  std::printf("## 1 to 1024 T4 (8 per node), micro-batch 64 per GPU, throughput scaling\n\n%s\n", table.c_str());
  if (!a.out_dir.empty()) {
    write_file(a.out_dir + "/paper_validation.md", vs::markdown(rows));
    write_file(a.out_dir + "/paper_validation.csv", vs::csv(rows));
    write_file(a.out_dir + "/paper_what_if.md", vs::markdown(what_if));
    write_file(a.out_dir + "/paper_what_if.csv", vs::csv(what_if));
    write_file(a.out_dir + "/paper_t4_1_to_1024.md", table);
    write_file(a.out_dir + "/paper_t4_1_to_1024.csv", csv);
    vs::save_profile(prof, a.out_dir + "/paper_t4_profile.json");
  }
  return 0;
}

int run_zero_ladder(const Args& a) {
  const vs::ZeroLadder ladder = vs::predict_zero_ladder({8, 64}, 64, {8, 64, 256});
  const std::string md = "# The ZeRO ladder on 8xT4 and 8xH100 nodes, simulated\n\n" + vs::markdown(ladder);
  std::printf("%s", md.c_str());
  if (!a.out_dir.empty()) {
    write_file(a.out_dir + "/zero_ladder.md", md);
    write_file(a.out_dir + "/zero_ladder.json", vs::to_json(ladder).dump(1) + "\n");
  }
  return 0;
}

// --zero-stage: one ZeRO step per world size (zero_timeline.h).
int run_zero_points(const Args& a, const vs::StepProfile& prof, const vs::NetworkModel& net, vs::RunConfig rc) {
  const int stage = std::max(a.zero_stage, 0);  // --activation-checkpointing alone: stage 0
  vs::ZeroOptions zo;
  zo.stage = stage;
  zo.checkpointing = a.checkpointing;
  zo.persistence_elements = a.persistence;
  zo.reduce_every_micro_step = a.reduce_every_micro_step;
  zo.progress = vs::comm_progress_of(net);  // nonblocking MPI: collectives move only while the host waits
  nlohmann::json out = {{"profile", prof.source}, {"network", vs::to_json(net)}, {"mode", "zero"}};
  out["points"] = nlohmann::json::array();
  std::printf("profile: %s\nnetwork: %s\nZeRO stage %d, activation checkpointing %s\n\n", prof.source.c_str(),
              net.describe().c_str(), stage, a.checkpointing ? "on" : "off");
  vitscale::ViTConfig cfg;
  if (!a.memory_of.empty()) {
    if (a.memory_of.size() != 8)
      throw std::invalid_argument("--memory-of takes 8 numbers: image,channels,patch,dim,depth,heads,mlp,classes");
    const auto& v = a.memory_of;
    cfg.image_size = v[0], cfg.channels = v[1], cfg.patch_size = v[2], cfg.dim = v[3], cfg.depth = v[4];
    cfg.heads = v[5], cfg.mlp_dim = v[6], cfg.num_classes = v[7];
  }
  std::printf(
      "| GPUs | micro | step | compute | recompute | comm | exposed | sent/rank |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int w : a.worlds) {
    rc.world = w;
    const vs::ZeroStepResult r = vs::predict_zero_step(prof, net, rc, zo);
    std::printf("| %d%s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.1f MB |\n", w,
                rc.oversubscribed() ? " (oversubscribed)" : "", rc.micro_batch, 1e3 * r.step_s, 1e3 * r.compute_s,
                1e3 * r.recompute_s, 1e3 * r.comm_s, 1e3 * r.exposed_s, r.sent_bytes / 1e6);
    out["points"].push_back({{"world", w},
                             {"micro_batch", rc.micro_batch},
                             {"accumulation", rc.accumulation},
                             {"overlap", rc.overlap},
                             {"bucket_bytes", rc.bucket_bytes},
                             {"oversubscribed", rc.oversubscribed()},
                             {"zero_stage", stage},
                             {"checkpointing", a.checkpointing},
                             {"step_s", r.step_s},
                             {"compute_s", r.compute_s},
                             {"recompute_s", r.recompute_s},
                             {"comm_s", r.comm_s},
                             {"exposed_s", r.exposed_s},
                             {"optimizer_s", r.optimizer_s},
                             {"sent_bytes", r.sent_bytes},
                             {"gathered_bytes", r.gathered_bytes},
                             {"collectives", r.collectives}});
    if (!a.memory_of.empty()) {
      vs::ZeroMemoryOptions mo;  // fp32 throughout, as vitscale's CPU runs
      mo.stage = stage, mo.checkpointing = a.checkpointing, mo.world = w, mo.micro_batch = rc.micro_batch;
      mo.bucket_bytes = rc.bucket_bytes, mo.accumulation = rc.accumulation, mo.overlap = rc.overlap;
      mo.reduce_every_micro_step = a.reduce_every_micro_step, mo.persistence_elements = a.persistence;
      const vs::ZeroMemory m = vs::zero_memory(cfg, mo);
      out["points"].back()["memory_bytes"] = {{"parameters", m.params},   {"gradients", m.grads},
                                              {"optimizer", m.optimizer}, {"activations", m.activations},
                                              {"working", m.working},     {"total", m.total()}};
    }
  }
  emit_json(a.json_out, out);
  return 0;
}

int run_profile(const Args& a) {
  if (a.profile.empty()) throw std::invalid_argument("give --preset paper-t4 or --profile FILE");
  const vs::StepProfile prof = vs::load_profile(a.profile);
  vs::NetworkModel net = a.network_json.empty() ? vs::network_preset(a.network) : vs::load_network(a.network_json);
  if (a.ranks_per_node > 0) net.ranks_per_node = a.ranks_per_node;
  if (!a.algo.empty()) net.algo = vs::parse_algo(a.algo);
  if (!a.mpi_progress.empty()) net.mpi_progress = a.mpi_progress;
  if (a.overlap != "on" && a.overlap != "off") throw std::invalid_argument("--overlap takes on or off");

  vs::RunConfig rc;
  rc.micro_batch = a.micro_batch > 0 ? a.micro_batch : prof.micro_batch;
  rc.accumulation = a.accumulation;
  rc.overlap = a.overlap == "on";
  rc.bucket_bytes = static_cast<std::size_t>(a.bucket_mb * (1 << 20));
  rc.first_bucket_bytes = static_cast<std::size_t>(a.first_bucket_mb * (1 << 20));
  rc.jitter_cv = a.jitter_cv;
  rc.cpu_cores = a.cpu_cores;
  if (a.zero_stage >= 0 || a.checkpointing) {
    if (a.sweep) throw std::invalid_argument("--sweep-buckets does not combine with --zero-stage");
    if (a.mode != "step") throw std::invalid_argument("--zero-stage and --activation-checkpointing take --mode step");
    return run_zero_points(a, prof, net, rc);
  }

  std::vector<vs::ScalingPoint> points;
  if (a.mode == "step" || a.mode == "weak") {
    points = vs::weak_scaling(prof, net, rc, a.mode == "weak" ? a.images : 0, a.worlds);
  } else if (a.mode == "strong-global") {
    if (a.global_batch < 1) throw std::invalid_argument("--mode strong-global needs --global-batch");
    points = vs::strong_fixed_global(prof, net, rc, a.global_batch, a.worlds);
  } else if (a.mode == "strong-dataset") {
    if (a.images < 1) throw std::invalid_argument("--mode strong-dataset needs --images");
    points = vs::strong_fixed_dataset(prof, net, rc, a.images, a.worlds);
  } else {
    throw std::invalid_argument("--mode takes step, strong-global, strong-dataset or weak");
  }

  nlohmann::json out = {{"profile", prof.source}, {"network", vs::to_json(net)}, {"mode", a.mode}};
  out["points"] = nlohmann::json::array();
  std::printf("profile: %s\nnetwork: %s\n\n", prof.source.c_str(), net.describe().c_str());
  std::printf(
      "| GPUs | micro | global | step | comm | exposed | overlap | images/s | speed-up | efficiency |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& p : points) {
    std::printf("| %d%s | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.0f%% | %.1f | %.2fx | %.1f%% |\n", p.config.world,
                p.config.oversubscribed() ? " (oversubscribed)" : "", p.config.micro_batch, p.config.global_batch(),
                1e3 * p.step.step_s, 1e3 * p.step.comm_s, 1e3 * p.step.exposed_s, 100 * p.step.overlap_ratio(),
                p.images_per_s, p.speedup, 100 * p.efficiency);
    auto j = step_json(p.config, p.step);
    j["time_s"] = p.time_s;
    j["speedup"] = p.speedup;
    j["efficiency"] = p.efficiency;
    out["points"].push_back(j);
  }
  if (a.sweep) {
    vs::RunConfig at = points.empty() ? rc : points.back().config;
    const auto sweep = vs::sweep_buckets(prof, net, at, vs::default_bucket_candidates());
    const std::size_t pick = vs::recommend_bucket(sweep);
    std::printf(
        "\nbucket sweep at %d GPUs, micro-batch %d (overlap on):\n\n| bucket | buckets | step | exposed |\n"
        "| ---: | ---: | ---: | ---: |\n",
        at.world, at.micro_batch);
    out["bucket_sweep"] = nlohmann::json::array();
    for (const auto& c : sweep) {
      std::printf("| %zu MiB%s | %zu | %.2f ms | %.2f ms |\n", c.bucket_bytes >> 20, c.bucket_bytes == pick ? " *" : "",
                  c.step.buckets.size(), 1e3 * c.step.step_s, 1e3 * c.step.exposed_s);
      out["bucket_sweep"].push_back({{"bucket_bytes", c.bucket_bytes},
                                     {"step_s", c.step.step_s},
                                     {"exposed_s", c.step.exposed_s},
                                     {"buckets", c.step.buckets.size()}});
    }
    out["recommended_bucket_bytes"] = pick;
    std::printf("\nrecommended reduce_bucket_size: %zu bytes (%zu MiB)\n", pick, pick >> 20);
  }
  emit_json(a.json_out, out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vit_scaling_sim: replay overlapped backward + bucketed all-reduce, predict scaling"};
  Args a;
  app.add_option("--preset", a.preset,
                 "paper-t4: the paper's DeepSpeed setup, predicted vs published; zero-ladder: ZeRO stages 0-3 x "
                 "checkpointing on 8xT4 and 8xH100 nodes")
      ->check(CLI::IsMember({"paper-t4", "zero-ladder"}));
  app.add_option("--out-dir", a.out_dir, "with --preset: write the tables (md, csv) here")
      ->check(CLI::ExistingDirectory);
  app.add_option("--profile", a.profile, "one rank's step profile (JSON from vit_scaling_profile)");
  app.add_option("--network", a.network, "network preset: t4-node, t4-node-100g, dgx-a100, dgx-h100");
  app.add_option("--network-json", a.network_json, "a network model file (e.g. measured by vit_allreduce_bench)");
  app.add_option("--ranks-per-node", a.ranks_per_node, "override the preset's ranks per node");
  app.add_option("--algo", a.algo, "all-reduce algorithm: ring, tree, hierarchical, best");
  app.add_option("--world", a.worlds, "world sizes, e.g. --world 1,2,4,8")->delimiter(',');
  app.add_option("--mode", a.mode, "step | strong-global | strong-dataset | weak");
  app.add_option("--micro-batch", a.micro_batch, "images per rank per micro-step (default: the profile's)");
  app.add_option("--global-batch", a.global_batch, "strong-global: the fixed global batch");
  app.add_option("--accumulation", a.accumulation, "gradient_accumulation_steps")->check(CLI::PositiveNumber);
  app.add_option("--images", a.images, "strong-dataset: images per epoch; weak: images per rank per epoch");
  app.add_option("--overlap", a.overlap, "overlap_comm: on or off");
  app.add_option("--bucket-mb", a.bucket_mb, "reduce_bucket_size in MiB")->check(CLI::PositiveNumber);
  app.add_option("--first-bucket-mb", a.first_bucket_mb, "first bucket's size in MiB (0: same)");
  app.add_option("--cpu-cores", a.cpu_cores, "CPU ranks: cores available (slows compute when ranks > cores)");
  app.add_option("--mpi-progress", a.mpi_progress,
                 "CPU ranks: the MPI progress mode whose contended curve applies (thread, polling; nonblocking: "
                 "--zero-stage replays collectives that move only while the host waits)")
      ->check(CLI::IsMember({"thread", "polling", "nonblocking"}));
  app.add_option("--jitter-cv", a.jitter_cv, "straggler model: per-rank compute coefficient of variation");
  app.add_option("--zero-stage", a.zero_stage, "replay ZeRO stage 0-3 (zero_timeline.h) instead of plain data parallel")
      ->check(CLI::Range(0, 3));
  app.add_option("--memory-of", a.memory_of,
                 "with --zero-stage: also the per-rank memory (fp32) of this ViT: image,channels,patch,dim,depth,"
                 "heads,mlp,classes (cls pooling)")
      ->delimiter(',');
  app.add_option("--stage3-param-persistence-threshold", a.persistence,
                 "with --zero-stage 3: groups of at most this many elements stay gathered (default 100000)");
  app.add_flag("--reduce-every-micro-step", a.reduce_every_micro_step,
               "with --zero-stage 2/3 and accumulation: reduce-scatter every micro-step");
  app.add_flag("--activation-checkpointing", a.checkpointing, "recompute every block but the last inside backward");
  app.add_flag("--sweep-buckets", a.sweep, "sweep reduce_bucket_size at the largest world and recommend one");
  app.add_option("--json", a.json_out, "write predictions as JSON to this file ('-': stdout)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (a.preset == "zero-ladder") return run_zero_ladder(a);
    return a.preset == "paper-t4" ? run_paper(a) : run_profile(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_scaling_sim: %s\n", e.what());
    return 1;
  }
}
