// cpu_bench.cpp — vit_bench's CPU side: every CPU-backend op of a ViT
// training step, timed alone at the step's shapes (the vit-cpu model by
// default: D=128, H=4, F=512, T=50, batch 128), each set against a ceiling
// measured in the same run on the same threads:
//   compute   a large square SGEMM through the same OpenBLAS, on all the
//             bench's threads (OpenBLAS's own threading): the machine's GEMM rate;
//   bandwidth copies from 1 MiB up to --ceiling-copy-mib MiB, in blocks over
//             the OpenMP threads, counting bytes read + written; each row is
//             set against the fastest copy that moves at least its bytes.
// GEMM-like rows (linear, attention) report GFLOP/s and the fraction of the
// SGEMM rate; the others GB/s and the fraction of the copy rate. Each op is
// the median wall time of --reps calls after --warmup; inputs are the step's
// own size, so they may sit in cache as they partly do inside the step.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "runtime/backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_model.h"
#include "tools/vit_bench/bench_table.h"
#include "tools/vit_bench/benches.h"

namespace vitscale::bench {
namespace {

using Clock = std::chrono::steady_clock;

double median_us(int warmup, int reps, const std::function<void()>& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t(static_cast<std::size_t>(std::max(reps, 1)));
  for (double& x : t) {
    const auto t0 = Clock::now();
    f();
    x = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

// Random f32 tensors on the CPU backend, kept alive for one benchmark.
struct Pool {
  Pool(Backend& b, std::uint64_t seed) : be(b), rng(seed) {}
  TensorView make(std::initializer_list<std::int64_t> dims, float lo = -1.f, float hi = 1.f) {
    TensorView t(nullptr, DType::f32, dims);
    bufs.push_back(be.allocate(std::max<std::size_t>(t.bytes(), 16), "bench tensor"));
    t.data = bufs.back().get();
    std::uniform_real_distribution<float> u(lo, hi);
    float* p = static_cast<float*>(t.data);
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
    return t;
  }
  Backend& be;
  std::mt19937_64 rng;
  std::vector<Buffer> bufs;
};

Ceilings measure_ceilings(const BenchOptions& o, int threads) {
  Ceilings c;
  c.flop_unit = 1e9;
  c.flop_unit_name = "GFLOP/s";
  // The copies first: OpenBLAS's threads keep spinning for a while after a call and would steal its cores.
  // From 1 MiB (cache-resident, as the ops' inputs partly are when called
  // back to back) up to --ceiling-copy-mib (memory); 256 KiB blocks.
  const std::size_t largest = static_cast<std::size_t>(o.ceiling_copy_mib) << 20, block = std::size_t{1} << 18;
  std::vector<char> src(largest, 1), dst(largest, 0);
  for (std::size_t bytes = std::min<std::size_t>(std::size_t{1} << 20, largest);; bytes *= 2) {
    bytes = std::min(bytes, largest);
    const auto blocks = static_cast<long long>((bytes + block - 1) / block);
    const int reps = std::max(3, std::min(o.reps, 10)) * (bytes < (std::size_t{16} << 20) ? 10 : 1);
    const double copy_us = median_us(2, reps, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (long long i = 0; i < blocks; ++i) {
        const std::size_t at = static_cast<std::size_t>(i) * block;
        std::memcpy(dst.data() + at, src.data() + at, std::min(block, bytes - at));
      }
    });
    c.copy_curve.push_back({2.0 * static_cast<double>(bytes), 2.0 * static_cast<double>(bytes) / (copy_us * 1e3)});
    if (bytes == largest) break;
  }
  c.copy_gbs = c.copy_curve.back().gbs;
  const int n = o.ceiling_gemm;
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), y(a.size());
  const int previous = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  const double gemm_us = median_us(1, std::max(3, std::min(o.reps, 10)), [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, y.data(), n);
  });
  openblas_set_num_threads(previous);
  // Let OpenBLAS's pool stop spinning (it yields for ~0.1 s after a call) before the ops are timed.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c.compute_flops = 2.0 * n * n * n / (gemm_us * 1e-6);

  std::printf("ceilings: copy (read+write, %d threads)", threads);
  for (const CopyPoint& p : c.copy_curve) std::printf(" %.0f MiB %.1f GB/s;", p.bytes / 2 / (1 << 20), p.gbs);
  std::printf(" SGEMM %.1f GFLOP/s (%d^3, OpenBLAS, %d threads)\n", c.compute_flops / 1e9, n, threads);
  return c;
}

std::string copy_curve_text(const Ceilings& c) {
  std::string s;
  for (const CopyPoint& p : c.copy_curve)
    s += (s.empty() ? "" : ", ") + fmt(p.gbs, 1) + " GB/s at " + fmt(p.bytes / 2 / (1 << 20), 0) + " MiB";
  return s;
}

void bench_ops(Backend& be, const BenchOptions& o, const ViTConfig& cfg, std::vector<BenchRow>& rows) {
  const long long B = o.batch > 0 ? o.batch : 128, D = cfg.dim, H = cfg.heads, F = cfg.mlp_dim, K = cfg.num_classes;
  const long long T =
      o.tokens > 0 ? o.tokens : (cfg.image_size / cfg.patch_size) * (cfg.image_size / cfg.patch_size) + 1;
  const long long R = B * T, hd = D / H;
  const std::string model = "D" + std::to_string(D) + " T" + std::to_string(T) + " B" + std::to_string(B);
  const auto time = [&](const std::function<void()>& f) { return median_us(o.warmup, o.reps, f); };
  auto add = [&](std::string op, std::string shape, double us, double bytes, double flops, std::string note = "") {
    rows.push_back(BenchRow{model, std::move(op), "f32", std::move(shape), us, bytes, flops, -1, std::move(note)});
  };
  Pool p(be, 1);
  const std::string s_rd = "R=" + std::to_string(R) + " D=" + std::to_string(D);

  // ---- the block's GEMMs: forward and backward (d_in, d_weight += and d_bias +=) ----
  struct Gemm {
    const char* name;
    long long N, K;
    bool gelu;
  };
  for (const Gemm& g :
       {Gemm{"qkv", 3 * D, D, false}, Gemm{"proj", D, D, false}, Gemm{"fc1", F, D, true}, Gemm{"fc2", D, F, false}}) {
    auto x = p.make({R, g.K}), w = p.make({g.N, g.K}, -0.05f, 0.05f), bias = p.make({g.N});
    auto y = p.make({R, g.N}), act = p.make({R, g.N}), dx = p.make({R, g.K}), dw = p.make({g.N, g.K}),
         db = p.make({g.N});
    const std::string shape = "M=" + std::to_string(R) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K);
    const double mnk = 2.0 * R * g.N * g.K;
    const double fwd =
        g.gelu ? time([&] { be.linear_gelu(y, act, x, w, bias); }) : time([&] { be.linear(y, x, w, bias); });
    add(std::string(g.gelu ? "linear+gelu " : "linear ") + g.name + " fwd", shape, fwd, 0, mnk,
        g.gelu ? "GEMM + bias + erf GELU" : "GEMM + bias");
    const double bwd = time([&] { be.linear_backward(dx, dw, db, y, x, w); });
    add(std::string("linear ") + g.name + " bwd", shape, bwd, 0, 2 * mnk, "d_in, d_weight +=, d_bias +=");
    if (g.gelu) {
      auto d_pre = p.make({R, g.N});
      const double gb = time([&] { be.gelu_backward(d_pre, act, y); });
      add("gelu bwd", "n=" + std::to_string(R * g.N), gb, 3.0 * R * g.N * 4, 0, "d_out, pre read; d_pre written");
    }
  }

  // ---- attention ----
  {
    auto qkv = p.make({B, T, 3 * D}), out = p.make({B, T, D}), lse = p.make({B, H, T}), dout = p.make({B, T, D}),
         dqkv = p.make({B, T, 3 * D});
    const std::string shape =
        "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) + " hd=" + std::to_string(hd);
    const double flops = 4.0 * B * H * T * T * hd;
    const double fwd = time([&] { be.attention(out, lse, qkv, static_cast<int>(H)); });
    const double bwd = time([&] { be.attention_backward(dqkv, dout, qkv, out, lse, static_cast<int>(H)); });
    add("attention fwd", shape, fwd, 0, flops, "QKᵀ and PV");
    add("attention bwd", shape, bwd, 0, 3.5 * flops, "P recomputed; dQ, dK, dV");
  }

  // ---- layernorm and the residual stream ----
  {
    auto x = p.make({R, D}), a = p.make({R, D}), out = p.make({R, D}), dy = p.make({R, D}), dx = p.make({R, D});
    auto mean = p.make({R}), rstd = p.make({R}), g = p.make({D}, 0.5f, 1.5f), bt = p.make({D}), dg = p.make({D}),
         db = p.make({D});
    add("layernorm fwd", s_rd, time([&] { be.layernorm(out, mean, rstd, x, g, bt); }), R * D * 8.0 + R * 8.0, 0);
    add("add_layernorm fwd", s_rd, time([&] { be.add_layernorm(dx, out, mean, rstd, x, a, g, bt); }),
        R * D * 16.0 + R * 8.0, 0, "residual add fused");
    be.layernorm(out, mean, rstd, x, g, bt);  // valid statistics for the backward
    add("layernorm bwd", s_rd, time([&] { be.layernorm_backward(dx, dg, db, dy, x, mean, rstd, g); }),
        R * D * 16.0 + R * 8.0, 0, "d_in accumulates: read+write");
    add("add", "n=" + std::to_string(R * D), time([&] { be.add(out, x, a); }), R * D * 12.0, 0);
  }

  // ---- loss and optimizer (the whole model's parameters) ----
  {
    auto logits = p.make({B, K}, -3, 3), targets = p.make({B, K}, 0, 0.2f), losses = p.make({B}), dl = p.make({B, K});
    add("cross_entropy fwd+bwd", "B=" + std::to_string(B) + " K=" + std::to_string(K),
        time([&] { be.cross_entropy(losses, dl, logits, targets, 1.f / static_cast<float>(B)); }), B * K * 12.0, 0);
    const ParamTable table(cfg);
    const long long n = table.total_numel();
    auto params = p.make({n}), grads = p.make({n}, -1e-3f, 1e-3f), m = p.make({n}, -1e-4f, 1e-4f),
         v = p.make({n}, 0, 1e-6f), norm = p.make({1});
    const auto segs = table.segments();
    AdamWHyper h;
    h.max_grad_norm = 1.f;
    add("grad norm²", "n=" + std::to_string(n), time([&] { be.grad_norm_squared(norm, grads); }), 4.0 * n, 0);
    be.grad_norm_squared(norm, grads);
    add("adamw (+clip)", "n=" + std::to_string(n), time([&] { be.adamw(params, grads, m, v, segs, h, norm); }),
        28.0 * n, 0, "params, grads, m, v read; params, m, v written");
  }
}

}  // namespace

int run_cpu_bench(const BenchOptions& o) {
  try {
    const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    ViTConfig cfg;  // the vit-cpu model's shapes unless overridden
    if (o.dim > 0) cfg.dim = o.dim;
    if (o.heads > 0) cfg.heads = o.heads;
    if (o.mlp > 0) cfg.mlp_dim = o.mlp;
    cfg.validate();
    auto be = make_cpu_backend(threads);
    const std::string header = "# vit_bench on " + be->name() + "\n\nCPU backend ops at the ViT step's shapes (" +
                               cfg.describe() + "); median of " + std::to_string(o.reps) + " runs after " +
                               std::to_string(o.warmup) + " warm-ups. LibTorch's CPU ops: not measured here.";
    std::cout << header << "\n";
    const Ceilings c = measure_ceilings(o, threads);
    std::vector<BenchRow> rows;
    bench_ops(*be, o, cfg, rows);
    write_reports(rows, c, o.out_dir,
                  header + "\n\nCeilings measured here: copy " + copy_curve_text(c) + ", SGEMM " +
                      fmt(c.compute_flops / 1e9, 1) + " GFLOP/s (" + std::to_string(threads) + " threads).");
  } catch (const std::exception& e) {
    std::cerr << "vit_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace vitscale::bench
