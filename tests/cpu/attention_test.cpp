// Attention on the CPU backend, at the token counts ViTs use (50 = 7x7 + cls,
// 65 = 8x8 + cls) and several head counts: forward and log-sum-exp against
// softmax(Q Kᵀ / √hd) V in double, backward against finite differences.
#include <cmath>

#include "tests/cpu/cpu_test_util.h"

namespace vitscale::test {
namespace {

struct AttentionReference {
  std::vector<double> out, lse;
};

// qkv (B, T, 3, H, hd) → out (B, T, H, hd), lse (B, H, T), in double.
AttentionReference attention_reference(const std::vector<float>& qkv, int B, int T, int D, int H) {
  const int hd = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  AttentionReference ref{std::vector<double>(static_cast<std::size_t>(B) * T * D),
                         std::vector<double>(static_cast<std::size_t>(B) * H * T)};
  auto at = [&](int b, int t, int which, int h, int d) {
    return static_cast<double>(qkv[((b * T + t) * 3 + which) * D + h * hd + d]);
  };
  std::vector<double> s(T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; ++i) {
        double mx = -1e300;
        for (int j = 0; j < T; ++j) {
          double dot = 0;
          for (int d = 0; d < hd; ++d) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < T; ++j) sum += std::exp(s[j] - mx);
        ref.lse[(b * H + h) * T + i] = mx + std::log(sum);
        for (int d = 0; d < hd; ++d) {
          double o = 0;
          for (int j = 0; j < T; ++j) o += std::exp(s[j] - mx) / sum * at(b, j, 2, h, d);
          ref.out[(b * T + i) * D + h * hd + d] = o;
        }
      }
  return ref;
}

}  // namespace

TEST_CASE("attention forward matches softmax(QKᵀ/√hd)V in double", "[cpu][attention]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, T, D, H] : {std::tuple{2, 50, 48, 1}, std::tuple{3, 65, 48, 3}, std::tuple{2, 50, 64, 4},
                            std::tuple{2, 65, 96, 6}, std::tuple{1, 7, 8, 2},
                            // The CPU model's heads (T 17, hd 24) and hd 40: 8-wide tail tiles.
                            std::tuple{2, 17, 96, 4}, std::tuple{1, 9, 40, 1}}) {
    CAPTURE(B, T, D, H);
    // Scores of a few units: the softmax is neither uniform nor one-hot.
    auto qkv = rng.normals(static_cast<std::size_t>(B) * T * 3 * D, 1.5f);
    std::vector<float> out(static_cast<std::size_t>(B) * T * D), lse(static_cast<std::size_t>(B) * H * T);
    be->attention(view(out, {B, T, D}), view(lse, {B, H, T}), view(qkv, {B, T, 3 * D}), H);
    const auto ref = attention_reference(qkv, B, T, D, H);
    CHECK(relative_error(out, ref.out) < 2e-6);
    CHECK(relative_error(lse, ref.lse) < 1e-6);
  }
}

TEST_CASE("attention backward matches finite differences and assigns d_qkv", "[cpu][attention]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  auto be = make_cpu_backend();
  for (auto [B, T, D, H] :
       {std::tuple{2, 50, 24, 1}, std::tuple{2, 65, 24, 3}, std::tuple{1, 50, 32, 4}, std::tuple{1, 65, 48, 6},
        std::tuple{2, 17, 96, 4}, std::tuple{1, 9, 40, 1}}) {
    CAPTURE(B, T, D, H);
    auto qkv = rng.normals(static_cast<std::size_t>(B) * T * 3 * D);
    const auto weights = rng.normals(static_cast<std::size_t>(B) * T * D);
    std::vector<float> out(weights.size()), lse(static_cast<std::size_t>(B) * H * T);
    auto loss = [&] {
      be->attention(view(out, {B, T, D}), view(lse, {B, H, T}), view(qkv, {B, T, 3 * D}), H);
      return dot(weights, out);
    };
    loss();
    auto d_out = weights;
    std::vector<float> d_qkv(qkv.size(), 11.f);
    be->attention_backward(view(d_qkv, {B, T, 3 * D}), view(d_out, {B, T, D}), view(qkv, {B, T, 3 * D}),
                           view(out, {B, T, D}), view(lse, {B, H, T}), H);
    const auto saved_out = out, saved_lse = lse;
    CHECK(worst_directional_error(qkv, d_qkv, loss, rng, 5e-2f) < 2e-4);
    // Queries, keys and values each get their own check: a wrong term in one
    // of them could hide in the sum over all three.
    for (int which = 0; which < 3; ++which) {
      CAPTURE(which);
      std::vector<float> grad_part(d_qkv.size(), 0.f);
      for (int bt = 0; bt < B * T; ++bt)
        for (int i = 0; i < D; ++i) grad_part[(bt * 3 + which) * D + i] = d_qkv[(bt * 3 + which) * D + i];
      // Perturb only this part: the direction is masked by zeroing the others' gradient
      // and restoring their values around each loss evaluation.
      const auto base = qkv;
      auto masked_loss = [&] {
        for (int bt = 0; bt < B * T; ++bt)
          for (int w = 0; w < 3; ++w)
            if (w != which)
              for (int i = 0; i < D; ++i) qkv[(bt * 3 + w) * D + i] = base[(bt * 3 + w) * D + i];
        return loss();
      };
      CHECK(worst_directional_error(qkv, grad_part, masked_loss, rng, 5e-2f) < 2e-4);
    }
    // Assigned, not accumulated: a second call over different contents gives the same bits.
    out = saved_out;
    lse = saved_lse;
    std::vector<float> d_qkv2(qkv.size(), -4.f);
    be->attention_backward(view(d_qkv2, {B, T, 3 * D}), view(d_out, {B, T, D}), view(qkv, {B, T, 3 * D}),
                           view(out, {B, T, D}), view(lse, {B, H, T}), H);
    CHECK(d_qkv2 == d_qkv);
  }
}

}  // namespace vitscale::test
