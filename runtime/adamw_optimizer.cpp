#include "runtime/adamw_optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace vitscale {

AdamWOptimizer::AdamWOptimizer(Backend& backend, const ParamTable& table, std::int64_t begin, std::int64_t count)
    : backend_(backend), begin_(begin), count_(count) {
  if (begin < 0 || count < 0 || begin + count > table.total_numel())
    throw std::invalid_argument("AdamW range [" + std::to_string(begin) + ", +" + std::to_string(count) +
                                ") is outside the " + std::to_string(table.total_numel()) + " parameters");
  // Clip each parameter's segment to this range; re-base offsets to begin.
  for (const ParamSegment& s : table.segments()) {
    const std::int64_t lo = std::max(s.offset, begin), hi = std::min(s.offset + s.numel, begin + count);
    if (lo < hi) segments_.push_back(ParamSegment{lo - begin, hi - lo, s.decay});
  }
  arena_ = make_arena(backend_, "optimizer", [&](ArenaCarver& c) {
    m_ = c.take(DType::f32, {std::max<std::int64_t>(count, 1)}).slice_flat(0, count);
    v_ = c.take(DType::f32, {std::max<std::int64_t>(count, 1)}).slice_flat(0, count);
    norm_sq_ = c.take(DType::f32, {1});
  });
  if (count > 0) {
    backend_.fill_zero(m_);
    backend_.fill_zero(v_);
  }
  backend_.fill_zero(norm_sq_);
}

void AdamWOptimizer::compute_grad_norm_sq(TensorView grads_range) {
  if (count_ == 0) {
    backend_.fill_zero(norm_sq_);
    return;
  }
  backend_.grad_norm_squared(norm_sq_, grads_range);
}

void AdamWOptimizer::update(TensorView params_range, TensorView grads_range, const AdamWHyper& hyper) {
  if (count_ == 0) return;
  backend_.adamw(params_range, grads_range, m_, v_, segments_, hyper, norm_sq_);
}

void AdamWOptimizer::step(TensorView params, TensorView grads, const AdamWHyper& hyper) {
  const TensorView p = params.slice_flat(begin_, count_), g = grads.slice_flat(begin_, count_);
  compute_grad_norm_sq(g);
  update(p, g, hyper);
}

float AdamWOptimizer::read_grad_norm() const {
  float sq = 0.f;
  backend_.copy_to_host(&sq, norm_sq_.data, sizeof sq);
  return std::sqrt(sq);
}

}  // namespace vitscale
