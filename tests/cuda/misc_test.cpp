// misc_test.cpp — patchify, embeddings, pooling, cross-entropy and the
// optimizer on the CUDA backend against the CPU reference; determinism of the
// gradient norm; CUDA graph capture and replay; clear errors.
#include <cmath>
#include <cstring>

#include "tests/cuda/cuda_test_util.h"

using namespace vitscale;
using namespace vitscale::cuda_test;

namespace {
const DType kDtypes[] = {DType::f32, DType::bf16};
}

TEST_CASE("cuda image_to_patches (with and without resize) matches the CPU reference", "[cuda][patchify]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  struct Case {
    long long B, C, S, I, P;
  };
  const Case cases[] = {{3, 3, 32, 32, 4}, {2, 3, 32, 64, 8}, {2, 1, 28, 28, 4}, {1, 3, 32, 224, 16}};
  for (DType act : kDtypes) {
    for (const auto& c : cases) {
      CAPTURE(dtype_name(act), c.B, c.C, c.S, c.I, c.P);
      Rng rng(seed + static_cast<std::uint64_t>(c.I * 3 + c.C));
      const auto img = rng.bytes(c.B * c.C * c.S * c.S);
      ImageNorm norm;
      norm.channels = static_cast<int>(c.C);
      for (int i = 0; i < 3; ++i) norm.mean[i] = 0.4f + 0.05f * i, norm.std[i] = 0.25f + 0.01f * i;
      const long long np = (c.I / c.P) * (c.I / c.P), pd = c.C * c.P * c.P;
      compare_with_cpu(act, {"patches"}, [&](Env& e) {
        auto patches = e.output(e.act(), {c.B, np, pd});
        e.be().image_to_patches(patches, e.input_u8({c.B, c.C, c.S, c.S}, img), norm, static_cast<int>(c.P),
                                static_cast<int>(c.I));
        return Outs{e.read(patches)};
      });
    }
  }
}

TEST_CASE("cuda embed_tokens and pool, forward and backward, match the CPU reference", "[cuda][embed]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType act : kDtypes) {
    for (bool cls : {true, false}) {
      const long long B = 5, np = cls ? 64 : 49, T = np + (cls ? 1 : 0), D = 192;
      CAPTURE(dtype_name(act), cls);
      Rng rng(seed + (cls ? 1 : 2));
      const auto pe = as_act(rng.normals(B * np * D), act), ct = as_act(rng.normals(D), act);
      const auto pos = as_act(rng.normals(T * D), act), dtok = as_act(rng.normals(B * T * D), act);
      const auto dcls0 = rng.normals(D), dpos0 = rng.normals(T * D);
      compare_with_cpu(act, {"tokens", "d_patch_emb", "d_cls", "d_pos"}, [&](Env& e) {
        auto tokens = e.output(e.act(), {B, T, D});
        e.be().embed_tokens(tokens, e.input(e.act(), {B, np, D}, pe), cls ? e.input(e.act(), {D}, ct) : TensorView{},
                            e.input(e.act(), {T, D}, pos));
        auto dpe = e.output(e.act(), {B, np, D});
        auto dcls = e.input(DType::f32, {D}, dcls0), dpos = e.input(DType::f32, {T, D}, dpos0);
        e.be().embed_tokens_backward(dpe, cls ? dcls : TensorView{}, dpos, e.input(e.act(), {B, T, D}, dtok));
        return Outs{e.read(tokens), e.read(dpe), cls ? e.read(dcls) : dcls0, e.read(dpos)};
      });
      const Pooling mode = cls ? Pooling::cls_token : Pooling::mean;
      const auto dpool = as_act(rng.normals(B * D), act);
      compare_with_cpu(act, {"pooled", "d_x"}, [&](Env& e) {
        auto pooled = e.output(e.act(), {B, D}), dx = e.output(e.act(), {B, T, D});
        e.be().pool(pooled, e.input(e.act(), {B, T, D}, dtok), mode);
        e.be().pool_backward(dx, e.input(e.act(), {B, D}, dpool), mode);
        return Outs{e.read(pooled), e.read(dx)};
      });
    }
  }
}

TEST_CASE("cuda cross_entropy with soft targets matches the CPU reference", "[cuda][loss]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType act : kDtypes) {
    for (auto [B, K] : {std::pair{50LL, 10LL}, {256LL, 100LL}, {3LL, 1000LL}}) {
      CAPTURE(dtype_name(act), B, K);
      Rng rng(seed + static_cast<std::uint64_t>(K));
      const auto logits = as_act(rng.normals(B * K, 3.f), act), targets = rng.distributions(B, K);
      compare_with_cpu(act, {"losses", "d_logits"}, [&](Env& e) {
        auto losses = e.output(DType::f32, {B}), dl = e.output(e.act(), {B, K});
        e.be().cross_entropy(losses, dl, e.input(e.act(), {B, K}, logits), e.input(DType::f32, {B, K}, targets),
                             1.f / static_cast<float>(B));
        return Outs{e.read(losses), e.read(dl)};
      });
    }
  }
}

TEST_CASE("cuda grad_norm_squared and adamw match the CPU reference", "[cuda][optimizer]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const long long n = 1000003;
  // Segments with alignment gaps between them, mixed decay rules.
  std::vector<ParamSegment> segs;
  for (long long off = 0, i = 0; off < n - 16; ++i) {
    const long long len = std::min<long long>(n - off, 1000 + 37 * (i % 50) * (i % 7 == 0 ? 100 : 1));
    segs.push_back(ParamSegment{off, std::max(1LL, len - 5), i % 3 != 0});
    off += len + (i % 2 ? 16 : 0);
  }
  const auto p0 = rng.normals(n, 0.1f), g0 = rng.normals(n, 0.01f), m0 = rng.normals(n, 0.001f);
  auto v0 = rng.uniforms(n, 0.f, 1e-4f);
  for (float max_norm : {0.f, 0.5f}) {
    CAPTURE(max_norm);
    AdamWHyper h;
    h.lr = 3e-3f;
    h.weight_decay = 0.05f;
    h.step = 3;
    h.max_grad_norm = max_norm;
    compare_with_cpu(DType::f32, {"grad_norm_sq", "params", "m", "v"}, [&](Env& e) {
      auto p = e.input(DType::f32, {n}, p0), g = e.input(DType::f32, {n}, g0);
      auto m = e.input(DType::f32, {n}, m0), v = e.input(DType::f32, {n}, v0);
      auto norm = e.output(DType::f32, {1});
      e.be().grad_norm_squared(norm, g);
      e.be().adamw(p, g, m, v, segs, h, norm);
      return Outs{e.read(norm), e.read(p), e.read(m), e.read(v)};
    });
  }
  // Same bits on every run.
  Env e(backends().gpu(DType::f32), DType::f32);
  auto g = e.input(DType::f32, {n}, g0);
  auto a = e.output(DType::f32, {1}), b = e.output(DType::f32, {1});
  e.be().grad_norm_squared(a, g);
  e.be().grad_norm_squared(b, g);
  CHECK(e.read(a) == e.read(b));
}

TEST_CASE("cuda weight_ema gives the CPU reference's bits", "[cuda][optimizer][ema]") {
  VS_REQUIRE_GPU();
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const auto e0 = rng.normals(1000003, 0.1f), p0 = rng.normals(1000003, 0.1f);
  // An odd length (the float4 body and the scalar tail) and an offset view
  // (not 16-byte aligned: the scalar path throughout).
  for (const long long offset : {0LL, 1LL}) {
    CAPTURE(offset);
    const long long n = 1000003 - offset;
    std::vector<float> e_n(e0.begin() + offset, e0.end()), p_n(p0.begin() + offset, p0.end());
    std::vector<std::vector<float>> out;
    for (Backend* be : {backends().cpu.get(), &backends().gpu(DType::f32)}) {
      Env env(*be, DType::f32);
      auto e = env.input(DType::f32, {n}, e_n), p = env.input(DType::f32, {n}, p_n);
      for (const float decay : {0.9f, 0.9999f}) env.be().weight_ema(e, p, decay);
      out.push_back(env.read(e));
    }
    CHECK(out[0] == out[1]);  // exact: each product rounded on both sides, no FMA
  }
}

TEST_CASE("cuda graph replay gives the eager results, AdamW scalars updated per replay", "[cuda][graph]") {
  VS_REQUIRE_GPU();
  Rng rng(fresh_seed());
  auto& be = static_cast<CudaBackend&>(backends().gpu(DType::bf16));
  // A fresh backend so that the shared one is not left holding a graph.
  CudaBackend gb(0, DType::bf16, false);
  Env e(gb, DType::bf16);
  (void)be;
  const long long R = 4 * 65, D = 192, N = 3 * D, n = 4096;
  auto x = e.input(DType::bf16, {R, D}, rng.normals(R * D));
  auto g = e.input(DType::bf16, {D}, rng.uniforms(D, 0.5f, 1.5f)), b = e.input(DType::bf16, {D}, rng.normals(D));
  auto w = e.input(DType::bf16, {N, D}, rng.normals(N * D, 0.05f)), bias = e.input(DType::bf16, {N}, rng.normals(N));
  auto ln = e.output(DType::bf16, {R, D}), mean = e.output(DType::f32, {R}), rstd = e.output(DType::f32, {R});
  auto qkv = e.output(DType::bf16, {4, 65, N}), att = e.output(DType::bf16, {4, 65, D});
  auto lse = e.output(DType::f32, {4, 3, 65});
  const auto p0 = rng.normals(n), g0 = rng.normals(n);
  auto p = e.input(DType::f32, {n}, p0), pg = e.input(DType::f32, {n}, g0);
  auto m = e.input(DType::f32, {n}, std::vector<float>(n, 0.f)), v = e.input(DType::f32, {n}, std::vector<float>(n, 0.f));
  auto norm = e.output(DType::f32, {1});
  const std::vector<ParamSegment> segs{{0, n / 2, true}, {n / 2, n / 2, false}};
  AdamWHyper h1, h2;
  h1.lr = 1e-3f, h1.step = 1, h1.max_grad_norm = 1.f;
  h2.lr = 5e-4f, h2.step = 2, h2.max_grad_norm = 1.f;
  auto step = [&](const AdamWHyper& h) {
    gb.layernorm(ln, mean, rstd, x, g, b);
    gb.linear(qkv.reshaped({R, N}), ln, w, bias);
    gb.attention(att, lse, qkv, 3);
    gb.grad_norm_squared(norm, pg);
    gb.adamw(p, pg, m, v, segs, h, norm);
  };
  // Eager: two steps.
  step(h1);
  step(h2);
  const auto eager_att = e.read(att), eager_p = e.read(p);
  // Graph: reset the optimizer state, capture once, replay twice with new scalars.
  e.upload(p, p0);
  e.upload(m, std::vector<float>(n, 0.f));
  e.upload(v, std::vector<float>(n, 0.f));
  gb.begin_capture();
  step(h1);  // the scalars passed here are ignored inside a capture
  gb.end_capture();
  REQUIRE(gb.has_graph());
  gb.set_adamw_hyper(h1);
  gb.replay();
  gb.set_adamw_hyper(h2);
  gb.replay();
  gb.synchronize();
  CHECK(e.read(att) == eager_att);
  CHECK(e.read(p) == eager_p);
}

TEST_CASE("cuda backend reports bad devices, out-of-memory and capture misuse clearly", "[cuda][errors]") {
  VS_REQUIRE_GPU();
  CHECK_THROWS_AS(make_cuda_backend(cuda_device_count(), DType::f32, false), std::invalid_argument);
  CHECK_THROWS_AS(make_cuda_backend(0, DType::u8, false), std::invalid_argument);
  Backend& be = backends().gpu(DType::f32);
  try {
    (void)be.allocate(std::size_t{1} << 50, "a petabyte");
    FAIL("expected an out-of-memory error");
  } catch (const std::runtime_error& err) {
    const std::string what = err.what();
    CHECK(what.find("out of memory") != std::string::npos);
    CHECK(what.find("a petabyte") != std::string::npos);
  }
  CudaBackend gb(0, DType::f32, false);
  gb.begin_capture();
  CHECK_THROWS_AS(gb.synchronize(), std::logic_error);
  CHECK_THROWS_AS((void)gb.allocate(1024, "inside a capture"), std::logic_error);
  const std::vector<float> host(4, 1.f);
  CHECK_THROWS_WITH(gb.copy_to_device(nullptr, host.data(), 16),
                    Catch::Contains("copy_to_device") && Catch::Contains("re-read this host memory"));
  gb.end_capture();
  CHECK_THROWS_AS(gb.linear(TensorView(nullptr, DType::f32, {2, 3}), TensorView(nullptr, DType::f32, {2, 4}),
                            TensorView(nullptr, DType::f32, {5, 4}), TensorView{}),
                  std::invalid_argument);
}
