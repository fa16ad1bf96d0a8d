// torch_test_util.h — moving test data between vitscale's f32 buffers and
// LibTorch, for the op parity tests (tests/torch/op_*.cpp).
//
// The references run in float64 on the same float inputs, so the comparison
// measures vitscale's fp32 error, not LibTorch's: ‖ours − ref‖ / ‖ref‖.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {

// A float64 copy of v with the given shape; requires_grad when asked.
inline torch::Tensor to_double(const std::vector<float>& v, std::vector<std::int64_t> shape, bool grad = false) {
  auto t = torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).to(torch::kFloat64);
  REQUIRE(t.numel() == static_cast<std::int64_t>(v.size()));
  return grad ? t.requires_grad_(true) : t;
}

inline std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

// ‖ours − ref‖ / ‖ref‖ against a LibTorch reference tensor.
inline double error_vs(const std::vector<float>& ours, const torch::Tensor& ref) {
  return relative_error(ours, to_vector(ref));
}

// The loss ⟨weights, out⟩ whose gradient the vitscale backward gets as d_out.
inline torch::Tensor weighted_sum(const torch::Tensor& out, const std::vector<float>& weights) {
  return (out * to_double(weights, out.sizes().vec())).sum();
}

}  // namespace vitscale::test
