// The CPU backend's contract beyond the maths: bad shapes and dtypes are
// refused with std::invalid_argument naming the op; reductions across rows give
// the same bits for any thread count; memory ops and cast behave as specified.
#include <omp.h>

#include <cstring>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

using Catch::Matchers::Contains;

// A view of the first elements of a larger buffer (the refusal tests only need
// shapes, not contents).
TensorView part(std::vector<float>& v, std::initializer_list<std::int64_t> dims) {
  TensorView t(v.data(), DType::f32, dims);
  REQUIRE(static_cast<std::size_t>(t.numel()) <= v.size());
  return t;
}

}  // namespace

TEST_CASE("ops refuse wrong shapes and dtypes with std::invalid_argument naming the op", "[cpu][contract]") {
  auto be = make_cpu_backend();
  std::vector<float> a(8192, 0.f), b(8192, 0.f), c(8192, 0.f), d(8192, 0.f), e(8192, 0.f), f(8192, 0.f);
  std::vector<std::int32_t> ints(64);
  TensorView wrong_dtype(ints.data(), DType::i32, {4, 8});

  CHECK_THROWS_WITH(be->linear(part(a, {4, 6}), part(b, {4, 8}), part(c, {6, 7}), TensorView{}), Contains("linear"));
  CHECK_THROWS_AS(be->linear(part(a, {4, 6}), part(b, {4, 8}), part(c, {6, 8}), part(d, {5})), std::invalid_argument);
  CHECK_THROWS_AS(be->linear(part(a, {4, 6}), wrong_dtype, part(c, {6, 8}), TensorView{}), std::invalid_argument);
  CHECK_THROWS_AS(be->linear(part(a, {4, 5}), part(b, {4, 8}), part(c, {6, 8}), TensorView{}), std::invalid_argument);
  CHECK_THROWS_WITH(be->linear_gelu(part(a, {4, 6}), part(d, {4, 5}), part(b, {4, 8}), part(c, {6, 8}), TensorView{}),
                    Contains("linear_gelu"));
  CHECK_THROWS_WITH(be->linear_backward(part(a, {4, 8}), part(b, {6, 9}), TensorView{}, part(c, {4, 6}),
                                        part(d, {4, 8}), part(e, {6, 8})),
                    Contains("linear_backward"));
  CHECK_THROWS_AS(be->gelu_backward(part(a, {4, 6}), part(b, {4, 6}), part(c, {6, 4})), std::invalid_argument);
  // mlp_backward (R = 2, D = 2, F = 4): act's shape wrong, then d_hidden on top of d_out.
  const auto mlp = [&](TensorView act, TensorView d_hidden) {
    be->mlp_backward({.d_in = {},
                      .d_fc1_weight = part(a, {4, 2}),
                      .d_fc1_bias = {},
                      .d_fc2_weight = part(b, {2, 4}),
                      .d_fc2_bias = {},
                      .d_hidden = d_hidden,
                      .d_out = part(d, {2, 2}),
                      .in = part(e, {2, 2}),
                      .pre = part(f, {2, 4}),
                      .act = act,
                      .fc1_weight = part(a, {4, 2}),
                      .fc2_weight = part(b, {2, 4})});
  };
  CHECK_NOTHROW(mlp(part(f, {2, 4}), part(c, {2, 4})));
  CHECK_THROWS_WITH(mlp(part(f, {2, 3}), part(c, {2, 4})), Contains("mlp_backward") && Contains("act"));
  CHECK_THROWS_WITH(mlp(part(f, {2, 4}), part(d, {2, 4})), Contains("mlp_backward") && Contains("d_hidden"));

  CHECK_THROWS_WITH(
      be->layernorm(part(a, {4, 8}), part(b, {4}), part(c, {3}), part(d, {4, 8}), part(e, {8}), part(f, {8})),
      Contains("layernorm") && Contains("rstd"));
  CHECK_THROWS_AS(
      be->layernorm(part(a, {4, 8}), part(b, {4}), part(c, {4}), part(d, {4, 8}), part(e, {8}), TensorView{}),
      std::invalid_argument);
  CHECK_THROWS_AS(be->add_layernorm(part(a, {4, 8}), part(b, {4, 8}), part(c, {4}), part(d, {4}), part(e, {4, 8}),
                                    part(f, {4, 7}), part(c, {8}), part(d, {8})),
                  std::invalid_argument);
  CHECK_THROWS_WITH(be->layernorm_backward(part(a, {4, 8}), part(b, {8}), part(c, {8}), part(a, {4, 8}),
                                           part(d, {4, 8}), part(e, {4}), part(f, {4}), part(c, {8})),
                    Contains("alias"));
  CHECK_THROWS_AS(be->add(part(a, {4, 8}), part(b, {4, 8}), part(c, {8, 4})), std::invalid_argument);

  CHECK_THROWS_WITH(be->attention(part(a, {2, 5, 8}), part(b, {2, 3, 5}), part(c, {2, 5, 24}), 3),
                    Contains("attention") && Contains("heads"));
  CHECK_THROWS_AS(be->attention(part(a, {2, 5, 8}), part(b, {2, 2, 5}), part(c, {2, 5, 23}), 2), std::invalid_argument);
  CHECK_THROWS_AS(be->attention(part(a, {2, 5, 8}), part(b, {2, 2, 4}), part(c, {2, 5, 24}), 2), std::invalid_argument);
  CHECK_THROWS_AS(be->attention_backward(part(a, {2, 5, 24}), part(b, {2, 5, 8}), part(c, {2, 5, 24}),
                                         part(d, {2, 6, 8}), part(e, {2, 2, 5}), 2),
                  std::invalid_argument);

  CHECK_THROWS_WITH(be->pool(part(a, {3, 7}), part(b, {3, 5, 8}), Pooling::mean), Contains("pool"));
  CHECK_THROWS_AS(be->pool_backward(part(a, {3, 5, 8}), part(b, {2, 8}), Pooling::cls_token), std::invalid_argument);
  CHECK_THROWS_WITH(be->cross_entropy(part(a, {3}), part(b, {3, 10}), part(c, {3, 10}), part(d, {3, 9}), 1.f),
                    Contains("cross_entropy") && Contains("targets"));

  CHECK_THROWS_WITH(be->embed_tokens(part(a, {2, 5, 8}), part(b, {2, 4, 8}), part(c, {8}), part(d, {4, 8})),
                    Contains("embed_tokens") && Contains("pos_embed"));
  CHECK_THROWS_AS(be->embed_tokens(part(a, {2, 5, 8}), part(b, {2, 4, 8}), TensorView{}, part(d, {5, 8})),
                  std::invalid_argument);
  CHECK_THROWS_AS(be->embed_tokens_backward(part(a, {2, 4, 8}), part(b, {8}), part(c, {5, 8}), part(d, {2, 4, 8})),
                  std::invalid_argument);

  std::vector<std::uint8_t> pixels(2 * 3 * 28 * 28);
  TensorView images(pixels.data(), DType::u8, {2, 3, 28, 28});
  ImageNorm rgb{3, {0, 0, 0}, {1, 1, 1}};
  CHECK_THROWS_WITH(be->image_to_patches(part(a, {2, 49, 48}), images, rgb, 5, 28), Contains("image_to_patches"));
  CHECK_THROWS_AS(be->image_to_patches(part(a, {2, 49, 16}), images, rgb, 4, 28), std::invalid_argument);
  CHECK_THROWS_AS(be->image_to_patches(part(a, {2, 49, 48}), images, ImageNorm{1, {0}, {1}}, 4, 28),
                  std::invalid_argument);
  CHECK_THROWS_AS(be->image_to_patches(part(a, {2, 49, 48}), part(b, {2, 3, 28, 28}), rgb, 4, 28),
                  std::invalid_argument);

  std::vector<float> big(100);
  const std::vector<ParamSegment> outside{{90, 20, true}};
  CHECK_THROWS_WITH(
      be->adamw(part(big, {100}), part(a, {100}), part(b, {100}), part(c, {100}), outside, AdamWHyper{}, TensorView{}),
      Contains("adamw") && Contains("segment"));
  AdamWHyper clipping;
  clipping.max_grad_norm = 1.f;
  CHECK_THROWS_AS(
      be->adamw(part(big, {100}), part(a, {100}), part(b, {100}), part(c, {100}), {}, clipping, TensorView{}),
      std::invalid_argument);
  CHECK_THROWS_AS(be->grad_norm_squared(part(a, {2}), part(b, {100})), std::invalid_argument);

  CHECK_THROWS_WITH(be->cast(TensorView(a.data(), DType::bf16, {8}), part(b, {8})), Contains("f32 only"));
}

TEST_CASE("cross-row reductions give the same bits for 1, 2 and 3 threads", "[cpu][contract]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  ThreadCountGuard restore;
  const int R = 1300, D = 96, N = 160;
  const auto x = rng.normals(R * D), d_out = rng.normals(R * D), gamma = rng.normals(D), d_y = rng.normals(R * N);
  const auto grads = rng.normals(1 << 20);
  const int B = 26, T = 50;

  struct Results {
    std::vector<float> d_gamma, d_beta, d_bias, d_weight, d_pos, d_cls, norm_sq, d_qkv;
    bool operator==(const Results&) const = default;
  };
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    auto be = make_cpu_backend(threads);
    Results r{std::vector<float>(D, 0.f),     std::vector<float>(D, 0.f),        std::vector<float>(N, 0.f),
              std::vector<float>(N * D, 0.f), std::vector<float>(T * D, 0.f),    std::vector<float>(D, 0.f),
              std::vector<float>(1),          std::vector<float>(B * T * D, 0.f)};
    auto xs = x, dys = d_out, gs = gamma, dyl = d_y, gr = grads;
    std::vector<float> ln(R * D), mean(R), rstd(R), beta(D, 0.f), d_x(R * D, 0.f);
    be->layernorm(view(ln, {R, D}), view(mean, {R}), view(rstd, {R}), view(xs, {R, D}), view(gs, {D}), view(beta, {D}));
    be->layernorm_backward(view(d_x, {R, D}), view(r.d_gamma, {D}), view(r.d_beta, {D}), view(dys, {R, D}),
                           view(xs, {R, D}), view(mean, {R}), view(rstd, {R}), view(gs, {D}));
    be->linear_backward(TensorView{}, view(r.d_weight, {N, D}), view(r.d_bias, {N}), view(dyl, {R, N}),
                        view(xs, {R, D}), TensorView{});
    std::vector<float> d_patch(B * (T - 1) * D);
    be->embed_tokens_backward(view(d_patch, {B, T - 1, D}), view(r.d_cls, {D}), view(r.d_pos, {T, D}),
                              view(dys, {B, T, D}));
    be->grad_norm_squared(view(r.norm_sq, {1}), view(gr, {1 << 20}));
    std::vector<float> qkv(xs.begin(), xs.begin() + B * T * D), attn(B * T * D / 3), lse(B * 2 * T);
    be->attention(view(attn, {B, T, D / 3}), view(lse, {B, 2, T}), view(qkv, {B, T, D}), 2);
    std::vector<float> d_attn(dys.begin(), dys.begin() + B * T * D / 3);
    be->attention_backward(view(r.d_qkv, {B, T, D}), view(d_attn, {B, T, D / 3}), view(qkv, {B, T, D}),
                           view(attn, {B, T, D / 3}), view(lse, {B, 2, T}), 2);
    return r;
  };
  const Results one = run(1);
  CHECK(run(2) == one);
  CHECK(run(3) == one);
  CHECK(run(2) == run(2));
}

TEST_CASE("memory ops copy, zero and cast f32 as specified", "[cpu][contract]") {
  auto be = make_cpu_backend();
  CHECK(be->kind() == DeviceKind::cpu);
  CHECK(be->activation_dtype() == DType::f32);
  CHECK_THAT(be->name(), Contains("cpu"));
  Buffer buf = be->allocate(1000 * sizeof(float), "test buffer");
  REQUIRE(buf);
  CHECK(reinterpret_cast<std::uintptr_t>(buf.get()) % 64 == 0);
  std::vector<float> src(1000);
  for (int i = 0; i < 1000; ++i) src[i] = static_cast<float>(i) * 0.5f;
  be->copy_to_device(buf.get(), src.data(), src.size() * sizeof(float));
  Buffer other = be->allocate(1000 * sizeof(float), "other");
  be->copy_device(other.get(), buf.get(), 1000 * sizeof(float));
  std::vector<float> back(1000);
  be->copy_to_host(back.data(), other.get(), 1000 * sizeof(float));
  CHECK(back == src);
  std::vector<float> cast_to(1000);
  be->cast(view(cast_to, {10, 100}), TensorView(other.get(), DType::f32, {1000}));
  CHECK(cast_to == src);
  be->fill_zero(TensorView(other.get(), DType::f32, {1000}));
  be->copy_to_host(back.data(), other.get(), 1000 * sizeof(float));
  CHECK(back == std::vector<float>(1000, 0.f));
  be->synchronize();
}

}  // namespace vitscale::test
