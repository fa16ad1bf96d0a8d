#include "tools/scaling/profile.h"

#include <fstream>
#include <stdexcept>

#include "runtime/param_table.h"
#include "runtime/vit_flops.h"

namespace vitscale::scaling {

double StepProfile::backward_s() const {
  double t = 0;
  for (const auto& s : backward) t += s.seconds;
  return t;
}

StepProfile StepProfile::at_batch(int batch) const {
  if (batch < 1) throw std::invalid_argument("profile: micro-batch " + std::to_string(batch) + " < 1");
  StepProfile p = *this;
  const double f = static_cast<double>(batch) / micro_batch;
  p.micro_batch = batch;
  p.input_s *= f;
  p.forward_s *= f;
  for (auto& s : p.backward) s.seconds *= f;
  return p;
}

void StepProfile::rescale(double fwd, double bwd) {
  const double b0 = backward_s();
  if (forward_s <= 0 || b0 <= 0) throw std::invalid_argument("profile: cannot rescale a profile with zero times");
  forward_s = fwd;
  for (auto& s : backward) s.seconds *= bwd / b0;
}

void StepProfile::validate() const {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("profile (" + source + "): " + what); };
  if (micro_batch < 1) fail("micro_batch must be >= 1");
  if (backward.empty()) fail("no backward segments");
  if (backward.back().ready_from != 0) fail("the last backward segment must finish every gradient (ready_from 0)");
  for (std::size_t i = 1; i < backward.size(); ++i)
    if (backward[i].ready_from > backward[i - 1].ready_from)
      fail("backward segments must finish gradients back to front (segment '" + backward[i].label + "')");
  if (total_elements <= 0) fail("total_elements must be positive");
  if (params.empty()) fail("no parameter extents");
  if (input_s < 0 || forward_s < 0 || optimizer_s < 0 || step_overhead_s < 0) fail("negative time");
  if (!(copy_bytes_per_s >= 0)) fail("copy_bytes_per_s must be >= 0 (0: not measured)");
  for (const auto& s : backward)
    if (s.seconds < 0) fail("negative time in segment '" + s.label + "'");
}

std::vector<ParamExtent> param_extents(const ViTConfig& cfg, std::int64_t* total_elements) {
  const ParamTable table(cfg);
  std::vector<ParamExtent> out;
  out.reserve(table.params().size());
  for (const auto& p : table.params()) out.push_back(ParamExtent{p.offset, p.numel});
  if (total_elements) *total_elements = table.total_numel();
  return out;
}

std::vector<BackwardSegment> backward_segments(const ViTConfig& cfg) {
  // The order and offsets of ViTModel::backward's grads_ready_from calls.
  const ParamTable t(cfg);
  const auto& ps = t.params();
  std::vector<BackwardSegment> s;
  s.push_back({"head", 0, ps[static_cast<std::size_t>(t.head_w)].offset});
  s.push_back({"norm", 0, ps[static_cast<std::size_t>(t.norm_w)].offset});
  for (int l = cfg.depth - 1; l >= 0; --l)
    s.push_back({"blocks." + std::to_string(l), 0,
                 ps[static_cast<std::size_t>(t.blocks[static_cast<std::size_t>(l)].norm1_w)].offset});
  s.push_back({"embed", 0, 0});
  return s;
}

double FlopSplit::total() const { return embed + depth * block + head; }

FlopSplit forward_flops(const ViTConfig& c) {
  const ViTFlops v = vit_flops(c);
  FlopSplit f;
  f.depth = v.depth, f.embed = v.embed, f.block = v.block, f.head = v.head;
  return f;
}

StepProfile analytic_profile(const ViTConfig& cfg, const AnalyticOptions& opt) {
  if (opt.images_per_s <= 0) throw std::invalid_argument("analytic profile: images_per_s must be positive");
  if (opt.micro_batch < 1) throw std::invalid_argument("analytic profile: micro_batch must be >= 1");
  const double step = opt.micro_batch / opt.images_per_s;
  const double compute = step - opt.optimizer_s;
  if (compute <= 0) throw std::invalid_argument("analytic profile: the optimizer estimate exceeds the step time");
  const FlopSplit f = forward_flops(cfg);
  const double fwd = f.total();
  const double bwd = vit_flops(cfg).backward();
  const double per_flop = compute / (fwd + bwd);

  StepProfile p;
  p.source = "analytic: " + cfg.describe() + ", " + std::to_string(opt.images_per_s) + " images/s at micro-batch " +
             std::to_string(opt.micro_batch) + " (" + opt.source + "), split by FLOPs";
  p.micro_batch = opt.micro_batch;
  p.forward_s = fwd * per_flop;
  p.optimizer_s = opt.optimizer_s;
  p.backward = backward_segments(cfg);
  for (auto& s : p.backward) {
    if (s.label == "head")
      s.seconds = 2.0 * f.head * per_flop;
    else if (s.label == "embed")
      s.seconds = f.embed * per_flop;
    else if (s.label != "norm")
      s.seconds = 2.0 * f.block * per_flop;
  }
  p.params = param_extents(cfg, &p.total_elements);
  p.validate();
  return p;
}

nlohmann::json to_json(const StepProfile& p) {
  nlohmann::json segs = nlohmann::json::array();
  for (const auto& s : p.backward)
    segs.push_back({{"label", s.label}, {"seconds", s.seconds}, {"ready_from", s.ready_from}});
  nlohmann::json params = nlohmann::json::array();
  for (const auto& e : p.params) params.push_back({e.offset, e.numel});
  return {{"schema", "vitscale.profile/1"},
          {"source", p.source},
          {"micro_batch", p.micro_batch},
          {"input_s", p.input_s},
          {"forward_s", p.forward_s},
          {"backward", segs},
          {"optimizer_s", p.optimizer_s},
          {"step_overhead_s", p.step_overhead_s},
          {"total_elements", p.total_elements},
          {"grad_bytes", p.grad_bytes},
          {"copy_bytes_per_s", p.copy_bytes_per_s},
          {"params", params}};
}

StepProfile profile_from_json(const nlohmann::json& j) {
  StepProfile p;
  p.source = j.value("source", std::string("unknown"));
  p.micro_batch = j.at("micro_batch").get<int>();
  p.input_s = j.value("input_s", 0.0);
  p.forward_s = j.at("forward_s").get<double>();
  for (const auto& s : j.at("backward"))
    p.backward.push_back(
        {s.value("label", std::string()), s.at("seconds").get<double>(), s.at("ready_from").get<std::int64_t>()});
  p.optimizer_s = j.value("optimizer_s", 0.0);
  p.step_overhead_s = j.value("step_overhead_s", 0.0);
  p.total_elements = j.at("total_elements").get<std::int64_t>();
  p.grad_bytes = j.value("grad_bytes", 4);
  p.copy_bytes_per_s = j.value("copy_bytes_per_s", 0.0);
  for (const auto& e : j.at("params")) p.params.push_back({e.at(0).get<std::int64_t>(), e.at(1).get<std::int64_t>()});
  p.validate();
  return p;
}

StepProfile load_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open profile '" + path + "'");
  try {
    return profile_from_json(nlohmann::json::parse(in));
  } catch (const std::exception& e) {
    throw std::runtime_error("profile '" + path + "': " + e.what());
  }
}

void save_profile(const StepProfile& p, const std::string& path) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write profile '" + path + "'");
  out << to_json(p).dump(1) << "\n";
}

}  // namespace vitscale::scaling
