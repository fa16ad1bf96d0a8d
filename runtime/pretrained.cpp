// pretrained.cpp — --init-from: a timm state dict into a model of another grid or
// class count (the antialiased bicubic resample of pos_embed, a fresh head).
#include "runtime/pretrained.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "runtime/vit_model.h"

namespace vitscale {

namespace {

// The cubic convolution kernel with a = -0.5 (PIL's, and PyTorch's antialiased bicubic).
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Output j of n samples input [0, in) around centre (j + 0.5) * in / n; the
// kernel is stretched by the scale when shrinking; taps outside are dropped
// and the weights renormalised (align_corners=False, antialias=True).
struct Taps {
  std::vector<int> first;                   // (n)
  std::vector<std::vector<double>> weight;  // (n, taps)
};

Taps bicubic_taps(int in, int n) {
  Taps t;
  const double scale = static_cast<double>(in) / n, stretch = std::max(scale, 1.0), support = 2.0 * stretch;
  for (int j = 0; j < n; ++j) {
    const double centre = (j + 0.5) * scale;
    const int lo = std::max(static_cast<int>(centre - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(centre + support + 0.5), in);
    std::vector<double> w;
    double sum = 0.0;
    for (int i = lo; i < hi; ++i) {
      w.push_back(cubic((i - centre + 0.5) / stretch));
      sum += w.back();
    }
    for (double& v : w) v = sum != 0.0 ? v / sum : 0.0;
    t.first.push_back(lo);
    t.weight.push_back(std::move(w));
  }
  return t;
}

}  // namespace

std::vector<float> resample_pos_embed(const std::vector<float>& pos, int prefix, int old_h, int old_w, int new_h,
                                      int new_w, int dim) {
  const std::size_t D = static_cast<std::size_t>(dim);
  if (pos.size() != (static_cast<std::size_t>(prefix) + static_cast<std::size_t>(old_h) * old_w) * D)
    throw std::invalid_argument("resample_pos_embed: " + std::to_string(pos.size()) + " values for " +
                                std::to_string(prefix) + " + " + std::to_string(old_h) + "x" + std::to_string(old_w) +
                                " rows of " + std::to_string(dim));
  const Taps rows = bicubic_taps(old_h, new_h), cols = bicubic_taps(old_w, new_w);
  std::vector<float> out((static_cast<std::size_t>(prefix) + static_cast<std::size_t>(new_h) * new_w) * D);
  std::copy_n(pos.begin(), static_cast<std::size_t>(prefix) * D, out.begin());  // the class token row(s), kept
  const float* grid = pos.data() + static_cast<std::size_t>(prefix) * D;        // (old_h, old_w, D)
  // Columns first: (old_h, new_w, D) in double, then rows.
  std::vector<double> wide(static_cast<std::size_t>(old_h) * new_w * D, 0.0);
  for (int y = 0; y < old_h; ++y)
    for (int x = 0; x < new_w; ++x) {
      double* dst = wide.data() + (static_cast<std::size_t>(y) * new_w + x) * D;
      for (std::size_t k = 0; k < cols.weight[x].size(); ++k) {
        const float* src = grid + (static_cast<std::size_t>(y) * old_w + cols.first[x] + k) * D;
        for (std::size_t d = 0; d < D; ++d) dst[d] += cols.weight[x][k] * src[d];
      }
    }
  float* res = out.data() + static_cast<std::size_t>(prefix) * D;  // (new_h, new_w, D)
  std::vector<double> acc(D);
  for (int y = 0; y < new_h; ++y)
    for (int x = 0; x < new_w; ++x) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (std::size_t k = 0; k < rows.weight[y].size(); ++k) {
        const double* src = wide.data() + ((rows.first[y] + k) * static_cast<std::size_t>(new_w) + x) * D;
        for (std::size_t d = 0; d < D; ++d) acc[d] += rows.weight[y][k] * src[d];
      }
      float* dst = res + (static_cast<std::size_t>(y) * new_w + x) * D;
      for (std::size_t d = 0; d < D; ++d) dst[d] = static_cast<float>(acc[d]);
    }
  return out;
}

std::vector<std::string> init_from_pretrained(ViTModel& model, const SafetensorsFile& file, const std::string& what) {
  const ViTConfig& cfg = model.config();
  const ParamTable& table = model.table();
  const std::int64_t D = cfg.dim, K = cfg.num_classes;
  std::vector<float> flat(static_cast<std::size_t>(table.total_numel()));
  model.read_params(flat);  // what the file does not give (a fresh head) stays as initialised
  std::vector<std::string> lines;
  if (has_weight_average(file, table))
    lines.push_back(what +
                    ": a checkpoint with a weight average (ema.*): its live weights are used; an exported "
                    "model (--export-model) holds the average");

  const NamedTensor* head_w = file.find("head.weight");
  const NamedTensor* head_b = file.find("head.bias");
  bool fresh_head = false;
  if (!head_w && !head_b) {
    fresh_head = true;
    lines.push_back(what + ": no classifier head (head.weight, head.bias): a fresh one for " + std::to_string(K) +
                    " classes");
  } else if (head_w && head_b && head_w->shape.size() == 2 && head_w->shape[1] == D &&
             head_b->shape == std::vector<std::int64_t>{head_w->shape[0]} && head_w->shape[0] != K) {
    fresh_head = true;
    lines.push_back(what + ": head.weight " + shape_str(head_w->shape) + " is for " + std::to_string(head_w->shape[0]) +
                    " classes, this run has " + std::to_string(K) + ": a fresh classifier head");
  }

  // The pooling decides the class token, hence pos_embed's prefix: say that first.
  if (const NamedTensor* cls = file.find("cls_token"); cls && !cfg.has_cls_token())
    throw std::runtime_error(what + ": unexpected tensor 'cls_token' " + shape_str(cls->shape) +
                             ": the file's model has a class token, this one pools by mean (--pooling cls for it)");

  std::set<std::string> known;
  for (const ParamInfo& p : table.params()) {
    known.insert(p.name);
    if (fresh_head && (p.name == "head.weight" || p.name == "head.bias")) continue;
    const NamedTensor* t = file.find(p.name);
    if (!t) throw std::runtime_error(what + ": missing tensor '" + p.name + "' " + shape_str(p.shape));
    float* dst = flat.data() + p.offset;
    if (p.name == "pos_embed" && t->shape != p.shape) {
      const int prefix = cfg.has_cls_token() ? 1 : 0;
      const std::int64_t n_old = t->shape.size() == 3 ? t->shape[1] - prefix : 0;
      const int g_old = n_old > 0 ? static_cast<int>(std::lround(std::sqrt(static_cast<double>(n_old)))) : 0;
      if (t->shape.size() != 3 || t->shape[0] != 1 || t->shape[2] != D || g_old < 1 ||
          static_cast<std::int64_t>(g_old) * g_old != n_old)
        throw std::runtime_error(what + ": tensor 'pos_embed' has shape " + shape_str(t->shape) + ", not (1, " +
                                 std::to_string(prefix) + " + g*g, " + std::to_string(D) +
                                 ") of a square patch grid; the model needs " + shape_str(p.shape));
      const int g_new = cfg.patches_per_side();
      const std::vector<float> r = resample_pos_embed(t->values, prefix, g_old, g_old, g_new, g_new, cfg.dim);
      std::copy(r.begin(), r.end(), dst);
      lines.push_back(what + ": pos_embed resampled from a " + std::to_string(g_old) + "x" + std::to_string(g_old) +
                      " to a " + std::to_string(g_new) + "x" + std::to_string(g_new) +
                      " patch grid (bicubic, antialiased, as timm's resample_abs_pos_embed)" +
                      (prefix ? ", the class token row kept" : ""));
      continue;
    }
    if (t->shape != p.shape)
      throw std::runtime_error(what + ": tensor '" + p.name + "' has shape " + shape_str(t->shape) +
                               ", the model needs " + shape_str(p.shape));
    std::copy(t->values.begin(), t->values.end(), dst);
  }
  for (const auto& t : file.tensors) {
    const bool head = t.name == "head.weight" || t.name == "head.bias";
    if (!known.count(t.name) && !(fresh_head && head) && !is_training_state(t.name))
      throw std::runtime_error(what + ": unexpected tensor '" + t.name + "' " + shape_str(t.shape) +
                               " (not a parameter of " + cfg.describe() + ")");
  }
  model.write_params(flat);
  return lines;
}

}  // namespace vitscale
