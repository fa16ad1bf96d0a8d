// ops_test.cpp — layernorm, linear layers, GELU and the elementwise ops on the
// CUDA backend against the CPU reference (see cuda_test_util.h for the rules).
#include "tests/cuda/cuda_test_util.h"

using namespace vitscale;
using namespace vitscale::cuda_test;

namespace {
const DType kDtypes[] = {DType::f32, DType::bf16};
}

TEST_CASE("cuda layernorm and add_layernorm match the CPU reference", "[cuda][layernorm]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  // (rows, D): odd token counts, the ViT widths (vector path) and an odd width (generic path).
  const std::pair<long long, long long> shapes[] = {{2 * 50, 192}, {3 * 65, 384}, {2 * 197, 768}, {65, 100}, {7, 1024}};
  for (DType act : kDtypes) {
    for (auto [R, D] : shapes) {
      CAPTURE(dtype_name(act), R, D);
      Rng rng(seed + static_cast<std::uint64_t>(R * 131 + D));
      const auto a = as_act(rng.normals(R * D, 2.f), act), b = as_act(rng.normals(R * D), act);
      const auto gamma = as_act(rng.uniforms(D, 0.5f, 1.5f), act), beta = as_act(rng.normals(D, 0.1f), act);
      compare_with_cpu(act, {"out", "mean", "rstd"}, [&](Env& e) {
        auto in = e.input(e.act(), {R, D}, a);
        auto out = e.output(e.act(), {R, D});
        auto mean = e.output(DType::f32, {R}), rstd = e.output(DType::f32, {R});
        e.be().layernorm(out, mean, rstd, in, e.input(e.act(), {D}, gamma), e.input(e.act(), {D}, beta));
        return Outs{e.read(out), e.read(mean), e.read(rstd)};
      });
      compare_with_cpu(act, {"sum", "out", "mean", "rstd"}, [&](Env& e) {
        auto sum = e.output(e.act(), {R, D}), out = e.output(e.act(), {R, D});
        auto mean = e.output(DType::f32, {R}), rstd = e.output(DType::f32, {R});
        e.be().add_layernorm(sum, out, mean, rstd, e.input(e.act(), {R, D}, a), e.input(e.act(), {R, D}, b),
                             e.input(e.act(), {D}, gamma), e.input(e.act(), {D}, beta));
        return Outs{e.read(sum), e.read(out), e.read(mean), e.read(rstd)};
      });
    }
  }
}

TEST_CASE("cuda layernorm_backward matches the CPU reference and accumulates", "[cuda][layernorm]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  const std::pair<long long, long long> shapes[] = {{2 * 50, 192}, {4 * 65, 384}, {2 * 197, 768}, {65, 100}};
  for (DType act : kDtypes) {
    for (auto [R, D] : shapes) {
      CAPTURE(dtype_name(act), R, D);
      Rng rng(seed + static_cast<std::uint64_t>(R * 7 + D));
      const auto x = as_act(rng.normals(R * D, 1.5f), act), dy = as_act(rng.normals(R * D), act);
      const auto gamma = as_act(rng.uniforms(D, 0.5f, 1.5f), act), beta = as_act(rng.normals(D, 0.1f), act);
      const auto din0 = as_act(rng.normals(R * D), act);
      const auto dg0 = rng.normals(D), db0 = rng.normals(D);
      compare_with_cpu(act, {"d_in", "d_gamma", "d_beta"}, [&](Env& e) {
        // mean/rstd from the backend's own forward, as in training.
        auto in = e.input(e.act(), {R, D}, x), g = e.input(e.act(), {D}, gamma);
        auto out = e.output(e.act(), {R, D}), mean = e.output(DType::f32, {R}), rstd = e.output(DType::f32, {R});
        e.be().layernorm(out, mean, rstd, in, g, e.input(e.act(), {D}, beta));
        auto d_in = e.input(e.act(), {R, D}, din0);
        auto d_gamma = e.input(DType::f32, {D}, dg0), d_beta = e.input(DType::f32, {D}, db0);
        e.be().layernorm_backward(d_in, d_gamma, d_beta, e.input(e.act(), {R, D}, dy), in, mean, rstd, g);
        return Outs{e.read(d_in), e.read(d_gamma), e.read(d_beta)};
      });
    }
  }
}

TEST_CASE("cuda layernorm_backward is deterministic", "[cuda][layernorm][determinism]") {
  VS_REQUIRE_GPU();
  Rng rng(fresh_seed());
  const long long R = 256 * 65, D = 384;
  Env e(backends().gpu(DType::bf16), DType::bf16);
  auto in = e.input(DType::bf16, {R, D}, rng.normals(R * D)), dy = e.input(DType::bf16, {R, D}, rng.normals(R * D));
  auto g = e.input(DType::bf16, {D}, rng.uniforms(D, 0.5f, 1.5f)), b = e.input(DType::bf16, {D}, rng.normals(D));
  auto out = e.output(DType::bf16, {R, D}), mean = e.output(DType::f32, {R}), rstd = e.output(DType::f32, {R});
  e.be().layernorm(out, mean, rstd, in, g, b);
  std::vector<std::vector<float>> runs;
  for (int r = 0; r < 2; ++r) {
    auto d_in = e.input(DType::bf16, {R, D}, std::vector<float>(R * D, 0.f));
    auto dg = e.input(DType::f32, {D}, std::vector<float>(D, 0.f)), db = e.input(DType::f32, {D}, std::vector<float>(D, 0.f));
    e.be().layernorm_backward(d_in, dg, db, dy, in, mean, rstd, g);
    runs.push_back(e.read(dg));
  }
  CHECK(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(float)) == 0);
}

TEST_CASE("cuda linear and linear_gelu match the CPU reference", "[cuda][linear]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  // (M, N, K): token rows × the ViT GEMMs, the head, and an odd patch-embedding K.
  const std::array<long long, 3> shapes[] = {{2 * 65, 3 * 192, 192}, {3 * 50, 1536, 384}, {2 * 197, 768, 3072},
                                             {37, 10, 192}, {64 * 3, 192, 48}, {33, 100, 17}};
  for (DType act : kDtypes) {
    for (auto [M, N, K] : shapes) {
      for (bool with_bias : {true, false}) {
        CAPTURE(dtype_name(act), M, N, K, with_bias);
        Rng rng(seed + static_cast<std::uint64_t>(M * 31 + N * 7 + K));
        const auto x = as_act(rng.normals(M * K), act), w = as_act(rng.normals(N * K, 0.05f), act);
        const auto bias = as_act(rng.normals(N, 0.5f), act);
        compare_with_cpu(act, {"out"}, [&](Env& e) {
          auto out = e.output(e.act(), {M, N});
          e.be().linear(out, e.input(e.act(), {M, K}, x), e.input(e.act(), {N, K}, w),
                        with_bias ? e.input(e.act(), {N}, bias) : TensorView{});
          return Outs{e.read(out)};
        });
        if (!with_bias) continue;
        compare_with_cpu(act, {"pre", "out"}, [&](Env& e) {
          auto pre = e.output(e.act(), {M, N}), out = e.output(e.act(), {M, N});
          e.be().linear_gelu(pre, out, e.input(e.act(), {M, K}, x), e.input(e.act(), {N, K}, w),
                             e.input(e.act(), {N}, bias));
          return Outs{e.read(pre), e.read(out)};
        });
      }
    }
  }
}

TEST_CASE("cuda linear_backward matches the CPU reference and accumulates", "[cuda][linear]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  const std::array<long long, 3> shapes[] = {{2 * 65, 3 * 192, 192}, {3 * 50, 384, 1536}, {2 * 197, 768, 768},
                                             {37, 10, 192}, {33, 100, 17}};
  for (DType act : kDtypes) {
    for (auto [M, N, K] : shapes) {
      CAPTURE(dtype_name(act), M, N, K);
      Rng rng(seed + static_cast<std::uint64_t>(M * 31 + N * 7 + K));
      const auto x = as_act(rng.normals(M * K), act), w = as_act(rng.normals(N * K, 0.05f), act);
      const auto dy = as_act(rng.normals(M * N), act);
      const auto dw0 = rng.normals(N * K), db0 = rng.normals(N);
      compare_with_cpu(act, {"d_in", "d_weight", "d_bias"}, [&](Env& e) {
        auto d_in = e.output(e.act(), {M, K});
        auto dw = e.input(DType::f32, {N, K}, dw0), db = e.input(DType::f32, {N}, db0);
        e.be().linear_backward(d_in, dw, db, e.input(e.act(), {M, N}, dy), e.input(e.act(), {M, K}, x),
                               e.input(e.act(), {N, K}, w));
        return Outs{e.read(d_in), e.read(dw), e.read(db)};
      });
      // No d_in (the patch embedding), no bias.
      compare_with_cpu(act, {"d_weight"}, [&](Env& e) {
        auto dw = e.input(DType::f32, {N, K}, dw0);
        e.be().linear_backward(TensorView{}, dw, TensorView{}, e.input(e.act(), {M, N}, dy),
                               e.input(e.act(), {M, K}, x), e.input(e.act(), {N, K}, w));
        return Outs{e.read(dw)};
      });
    }
  }
}

TEST_CASE("cuda gelu_backward, add and cast match the CPU reference", "[cuda][elementwise]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType act : kDtypes) {
    for (long long n : {1LL, 7LL, 4096LL, 65 * 1536LL + 3}) {
      CAPTURE(dtype_name(act), n);
      Rng rng(seed + static_cast<std::uint64_t>(n));
      const auto pre = as_act(rng.normals(n, 2.f), act), dy = as_act(rng.normals(n), act);
      compare_with_cpu(act, {"d_pre", "d_pre in place", "add"}, [&](Env& e) {
        auto d_pre = e.output(e.act(), {n});
        auto p = e.input(e.act(), {n}, pre), g = e.input(e.act(), {n}, dy);
        e.be().gelu_backward(d_pre, g, p);
        auto inplace = e.input(e.act(), {n}, dy);
        e.be().gelu_backward(inplace, inplace, p);
        auto sum = e.output(e.act(), {n});
        e.be().add(sum, p, g);
        return Outs{e.read(d_pre), e.read(inplace), e.read(sum)};
      });
    }
  }
  // cast: f32 → bf16 rounds to nearest even, bf16 → f32 is exact.
  Rng rng(seed);
  const long long n = 1000003;
  const auto x = rng.normals(n, 3.f);
  Env e(backends().gpu(DType::bf16), DType::bf16);
  auto src = e.input(DType::f32, {n}, x);
  auto half = e.output(DType::bf16, {n}), back = e.output(DType::f32, {n});
  e.be().cast(half, src);
  e.be().cast(back, half);
  CHECK(e.read(back) == round_bf16(x));
}
