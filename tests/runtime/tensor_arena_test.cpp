// Tensor views and arena planning.
#include <catch2/catch.hpp>

#include "runtime/arena.h"
#include "runtime/tensor.h"

using namespace vitscale;

TEST_CASE("a tensor view reports its shape, size and reshapes", "[tensor]") {
  float data[24];
  TensorView v(data, DType::f32, {2, 3, 4});
  CHECK(v.numel() == 24);
  CHECK(v.bytes() == 96);
  CHECK(v.describe() == "f32(2,3,4)");
  CHECK(v.dim(-1) == 4);
  CHECK(v.reshaped({6, 4}).dim(0) == 6);
  CHECK_THROWS_AS(v.reshaped({5, 5}), std::invalid_argument);
  CHECK(v.slice_flat(4, 8).as<float>() == data + 4);
  CHECK_THROWS_AS(v.slice_flat(20, 8), std::invalid_argument);
  CHECK_THROWS_AS(v.as<std::int32_t>(), std::invalid_argument);
  CHECK_NOTHROW(expect_shape("op", "x", v, {2, -1, 4}));
  CHECK_THROWS_WITH(expect_shape("layernorm", "in", v, {2, 3, 5}),
                    Catch::Contains("layernorm: in is f32(2,3,4), expected (2,3,5)"));
}

TEST_CASE("the planning pass and the real pass of an arena agree", "[arena]") {
  auto layout = [](ArenaCarver& c, TensorView& a, TensorView& b, TensorView& d) {
    a = c.take(DType::f32, {3, 5});
    b = c.take(DType::u8, {7});
    d = c.take(DType::f32, {10});
  };
  TensorView a, b, d;
  ArenaCarver plan;
  layout(plan, a, b, d);
  CHECK(a.data == nullptr);
  std::vector<char> mem(plan.used() + 256);
  // Align the base like a device allocation would be.
  char* base = mem.data() + (256 - reinterpret_cast<std::uintptr_t>(mem.data()) % 256) % 256;
  ArenaCarver real(base);
  layout(real, a, b, d);
  CHECK(real.used() == plan.used());
  CHECK(a.data == base);
  // Each tensor starts 256-byte aligned and none overlap.
  CHECK(reinterpret_cast<std::uintptr_t>(b.data) % 256 == 0);
  CHECK(static_cast<char*>(b.data) >= static_cast<char*>(a.data) + a.bytes());
  CHECK(static_cast<char*>(d.data) >= static_cast<char*>(b.data) + b.bytes());
  CHECK(static_cast<char*>(d.data) + d.bytes() <= base + real.used());
}
