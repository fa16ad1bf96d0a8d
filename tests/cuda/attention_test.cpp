// attention_test.cpp — the fused SIMT path (f32, odd bf16 head sizes) and the
// tensor-core flash path (bf16, hd 32/48/64/80/96/128) against the CPU reference, at
// ViT's odd token counts and one multi-chunk length.
#include "tests/cuda/cuda_test_util.h"

using namespace vitscale;
using namespace vitscale::cuda_test;

namespace {

struct AttnCase {
  long long B, T, H, hd;
};

// (B, T, H, hd): CIFAR/4 (65), 50, ImageNet/16 (197), a multi-chunk 300, the
// other tensor-core head sizes (48, 80 and 96 too: they used to fall back to
// SIMT), and a head size only the SIMT path takes (40: not a multiple of 16).
const AttnCase kCases[] = {{2, 65, 3, 64}, {2, 50, 6, 64},  {1, 197, 4, 64},  {1, 300, 2, 64},
                           {2, 65, 4, 32}, {1, 65, 2, 128}, {1, 197, 2, 128}, {2, 65, 2, 48},
                           {1, 65, 2, 80}, {1, 197, 2, 96}, {2, 33, 2, 40}};

// Around the one-chunk limit (attention_chunks.h: T <= 128 is one shared-memory
// chunk of round_up(T, 16), walked in register tiles; 129 streams again):
// T = 65 (CIFAR at patch 4), 97, 112, 128, 129 at every tensor-core head size,
// including the cuts past 48 KiB of dynamic shared memory (hd 96 and 128 at
// T >= 97: dK/dV at hd 128, T = 128 takes 165 KiB).
const AttnCase kChunkCases[] = {{2, 65, 2, 64},  {2, 97, 3, 64},  {1, 128, 2, 64},  {1, 129, 2, 64},
                                {1, 128, 2, 32}, {1, 97, 2, 48},  {1, 128, 2, 80},  {1, 112, 2, 96},
                                {1, 128, 2, 96}, {1, 97, 2, 128}, {1, 128, 2, 128}, {1, 129, 2, 128}};

void check_forward(DType act, const AttnCase& c, std::uint64_t seed) {
  CAPTURE(dtype_name(act), c.B, c.T, c.H, c.hd);
  const long long D = c.H * c.hd;
  Rng rng(seed + static_cast<std::uint64_t>(c.T * 17 + c.hd));
  // Scaled so that softmax rows are neither flat nor one-hot.
  const auto qkv = as_act(rng.normals(c.B * c.T * 3 * D, 1.5f), act);
  compare_with_cpu(act, {"out", "lse"}, [&](Env& e) {
    auto out = e.output(e.act(), {c.B, c.T, D}), lse = e.output(DType::f32, {c.B, c.H, c.T});
    e.be().attention(out, lse, e.input(e.act(), {c.B, c.T, 3 * D}, qkv), static_cast<int>(c.H));
    return Outs{e.read(out), e.read(lse)};
  });
}

void check_backward(DType act, const AttnCase& c, std::uint64_t seed) {
  CAPTURE(dtype_name(act), c.B, c.T, c.H, c.hd);
  const long long D = c.H * c.hd;
  Rng rng(seed + static_cast<std::uint64_t>(c.T * 13 + c.hd));
  const auto qkv = as_act(rng.normals(c.B * c.T * 3 * D, 1.5f), act);
  const auto dout = as_act(rng.normals(c.B * c.T * D), act);
  compare_with_cpu(act, {"d_qkv"}, [&](Env& e) {
    // out and lse from the backend's own forward, as in training.
    auto x = e.input(e.act(), {c.B, c.T, 3 * D}, qkv);
    auto out = e.output(e.act(), {c.B, c.T, D}), lse = e.output(DType::f32, {c.B, c.H, c.T});
    e.be().attention(out, lse, x, static_cast<int>(c.H));
    auto d_qkv = e.output(e.act(), {c.B, c.T, 3 * D});
    e.be().attention_backward(d_qkv, e.input(e.act(), {c.B, c.T, D}, dout), x, out, lse, static_cast<int>(c.H));
    return Outs{e.read(d_qkv)};
  });
}

}  // namespace

TEST_CASE("cuda attention forward matches the CPU reference", "[cuda][attention]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType act : {DType::f32, DType::bf16})
    for (const auto& c : kCases) check_forward(act, c, seed);
}

TEST_CASE("cuda attention backward matches the CPU reference", "[cuda][attention]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType act : {DType::f32, DType::bf16})
    for (const auto& c : kCases) check_backward(act, c, seed);
}

// bf16 only: the tensor-core path is the one that cuts into chunks and tiles.
TEST_CASE("cuda attention at T = 65, 97, 112, 128, 129 matches the CPU reference, forward and backward",
          "[cuda][attention][chunks]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (const auto& c : kChunkCases) {
    check_forward(DType::bf16, c, seed);
    check_backward(DType::bf16, c, seed);
  }
}
