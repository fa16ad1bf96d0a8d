// Attention on the CPU backend, at the token counts ViTs use (50 = 7x7 + cls,
// 65 = 8x8 + cls) and several head counts: forward and log-sum-exp against
// softmax(Q Kᵀ / √hd) V in double, backward against finite differences;
// then each ISA's copy of the head kernels, called directly, against the
// double reference of both directions, and AVX2 against AVX-512 bit for bit.
#include "kernels/cpu/attention.h"

#include <cmath>
#include <cstdlib>

#include "tests/cpu/cpu_test_util.h"
#include "tests/test_skip.h"

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

// d_qkv (B, T, 3, H, hd) of Σ d_out ∘ out, in double: with P the softmax of
// S = Q Kᵀ · scale, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)),
// dQ = dS K · scale, dK = dSᵀ Q · scale, dV = Pᵀ dO.
std::vector<double> attention_backward_reference(const std::vector<float>& qkv, const std::vector<float>& d_out, int B,
                                                 int T, int D, int H) {
  const int hd = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> d_qkv(qkv.size(), 0.0);
  auto at = [&](int b, int t, int which, int h, int d) { return ((b * T + t) * 3 + which) * D + h * hd + d; };
  std::vector<double> p(static_cast<std::size_t>(T) * T), ds(p.size());
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < T; ++i) {
        double mx = -1e300, sum = 0, rowsum = 0;
        for (int j = 0; j < T; ++j) {
          double s = 0;
          for (int d = 0; d < hd; ++d) s += static_cast<double>(qkv[at(b, i, 0, h, d)]) * qkv[at(b, j, 1, h, d)];
          p[i * T + j] = s * scale;
          mx = std::max(mx, s * scale);
        }
        for (int j = 0; j < T; ++j) sum += p[i * T + j] = std::exp(p[i * T + j] - mx);
        for (int j = 0; j < T; ++j) {
          p[i * T + j] /= sum;
          double dp = 0;
          for (int d = 0; d < hd; ++d)
            dp += static_cast<double>(d_out[(b * T + i) * D + h * hd + d]) * qkv[at(b, j, 2, h, d)];
          ds[i * T + j] = dp;
          rowsum += p[i * T + j] * dp;
        }
        for (int j = 0; j < T; ++j) ds[i * T + j] = p[i * T + j] * (ds[i * T + j] - rowsum);
      }
      for (int i = 0; i < T; ++i)
        for (int j = 0; j < T; ++j)
          for (int d = 0; d < hd; ++d) {
            d_qkv[at(b, i, 0, h, d)] += ds[i * T + j] * qkv[at(b, j, 1, h, d)] * scale;
            d_qkv[at(b, j, 1, h, d)] += ds[i * T + j] * qkv[at(b, i, 0, h, d)] * scale;
            d_qkv[at(b, j, 2, h, d)] += p[i * T + j] * d_out[(b * T + i) * D + h * hd + d];
          }
    }
  return d_qkv;
}

struct AttentionRun {
  std::vector<float> out, lse, d_qkv;
  bool operator==(const AttentionRun&) const = default;
};

// Both directions through one ISA's kernels, at `threads` threads.
AttentionRun run_attention(cpu::AttentionIsa isa, const std::vector<float>& qkv, const std::vector<float>& d_out,
                           int threads, int B, int T, int D, int H) {
  AttentionRun r{std::vector<float>(d_out.size()), std::vector<float>(static_cast<std::size_t>(B) * H * T),
                 std::vector<float>(qkv.size(), 7.f)};
  std::vector<float> scratch(cpu::attention_scratch_floats(T, D / H) * threads);
  cpu::attention_forward(r.out.data(), r.lse.data(), qkv.data(), scratch.data(), threads, B, T, D, H, isa);
  cpu::attention_backward(r.d_qkv.data(), d_out.data(), qkv.data(), r.out.data(), r.lse.data(), scratch.data(), threads,
                          B, T, D, H, isa);
  return r;
}

std::vector<cpu::AttentionIsa> supported_attention_isas() {
  std::vector<cpu::AttentionIsa> isas;
  for (auto isa : {cpu::AttentionIsa::kBaseline, cpu::AttentionIsa::kAvx2, cpu::AttentionIsa::kAvx512})
    if (cpu::attention_isa_supported(isa)) isas.push_back(isa);
  return isas;
}

// (B, T, D, H): ViT token counts, the CPU model's heads (T 17, hd 24: an 8-wide
// tail tile), hd 40 and 64, one token.
constexpr std::tuple<int, int, int, int> kIsaShapes[] = {
    {2, 50, 64, 2}, {2, 17, 96, 4}, {1, 9, 40, 1}, {1, 65, 128, 2}, {1, 1, 16, 2}};

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

TEST_CASE("every attention ISA this CPU runs matches the double reference, both directions", "[cpu][attention]") {
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  const auto isas = supported_attention_isas();
  REQUIRE(cpu::attention_isa_supported(cpu::attention_isa()));
  if (!std::getenv("VITSCALE_CPU_ATTENTION")) CHECK(isas.back() == cpu::attention_isa());  // the default: the widest
  for (auto [B, T, D, H] : kIsaShapes) {
    const auto qkv = rng.normals(static_cast<std::size_t>(B) * T * 3 * D, 1.5f);
    const auto d_out = rng.normals(static_cast<std::size_t>(B) * T * D);
    const auto ref = attention_reference(qkv, B, T, D, H);
    const auto ref_d_qkv = attention_backward_reference(qkv, d_out, B, T, D, H);
    for (auto isa : isas) {
      CAPTURE(cpu::attention_isa_name(isa), B, T, D, H);
      const auto r = run_attention(isa, qkv, d_out, 2, B, T, D, H);
      CHECK(relative_error(r.out, ref.out) < 2e-6);
      CHECK(relative_error(r.lse, ref.lse) < 1e-6);
      CHECK(relative_error(r.d_qkv, ref_d_qkv) < 1e-5);
      // Deterministic: one thread gives the same bits as two.
      CHECK((run_attention(isa, qkv, d_out, 1, B, T, D, H) == r));
    }
  }
}

TEST_CASE("attention's AVX2 and AVX-512 kernels give the same bits", "[cpu][attention]") {
  if (!cpu::attention_isa_supported(cpu::AttentionIsa::kAvx2) ||
      !cpu::attention_isa_supported(cpu::AttentionIsa::kAvx512))
    VS_SKIP("this CPU lacks x86-64-v3 or x86-64-v4: only one of the two kernels runs here");
  const auto seed = fresh_seed();
  CAPTURE(seed);
  Rng rng(seed);
  // The same multiply-add chain per output lane; only the register holding a
  // 16-wide tile row (one zmm or two ymm) differs.
  for (auto [B, T, D, H] : kIsaShapes) {
    CAPTURE(B, T, D, H);
    const auto qkv = rng.normals(static_cast<std::size_t>(B) * T * 3 * D, 1.5f);
    const auto d_out = rng.normals(static_cast<std::size_t>(B) * T * D);
    CHECK((run_attention(cpu::AttentionIsa::kAvx2, qkv, d_out, 2, B, T, D, H) ==
           run_attention(cpu::AttentionIsa::kAvx512, qkv, d_out, 2, B, T, D, H)));
  }
}

TEST_CASE("attention refuses an ISA this CPU does not run, naming it", "[cpu][attention]") {
  if (cpu::attention_isa_supported(cpu::AttentionIsa::kAvx512))
    VS_SKIP("this CPU runs every attention ISA: none to refuse");
  std::vector<float> qkv(3 * 16, 1.f), out(16), lse(2), scratch(cpu::attention_scratch_floats(1, 8));
  CHECK_THROWS_WITH(cpu::attention_forward(out.data(), lse.data(), qkv.data(), scratch.data(), 1, 1, 1, 16, 2,
                                           cpu::AttentionIsa::kAvx512),
                    Catch::Contains("does not run the avx512"));
}

}  // namespace vitscale::test
