// cpu_bench.cpp — vit_bench's CPU side: every CPU-backend op of a ViT
// training step, timed alone at the step's shapes (by default ViTConfig's,
// the CPU bench configuration: D=128, H=4, F=512, T=50, batch 128), each set
// against a ceiling measured in the same run on the same threads:
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
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "runtime/backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_model.h"
#include "tools/bench_common/sgemm_ceiling.h"
#include "tools/vit_bench/bench_table.h"
#include "tools/vit_bench/benches.h"
#include "tools/vit_bench/torch_ops.h"  // torch-free: TorchTiming; the functions link only with LibTorch
#ifdef VITSCALE_BENCH_TORCH
#include "tools/torch_ref/torch_vit.h"
#endif

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
  const SgemmCeiling sgemm = sgemm_ceiling(n, threads, std::max(3, std::min(o.reps, 10)));
  c.compute_flops = sgemm.best();
  c.compute_source = sgemm.best_name();

  std::printf("ceilings: copy (read+write, %d threads)", threads);
  for (const CopyPoint& p : c.copy_curve) std::printf(" %.0f MiB %.1f GB/s;", p.bytes / 2 / (1 << 20), p.gbs);
  std::printf(" SGEMM %.1f GFLOP/s (%d^3, %d threads; OpenBLAS %.1f, vitscale's %s kernel %.1f)\n",
              c.compute_flops / 1e9, n, threads, sgemm.openblas_flops / 1e9, cpu::gemm_isa_name(cpu::gemm_isa()),
              sgemm.vitscale_flops / 1e9);
  return c;
}

std::string copy_curve_text(const Ceilings& c) {
  std::string s;
  for (const CopyPoint& p : c.copy_curve)
    s += (s.empty() ? "" : ", ") + fmt(p.gbs, 1) + " GB/s at " + fmt(p.bytes / 2 / (1 << 20), 0) + " MiB";
  return s;
}

// LibTorch's time for a row, measured after every vitscale op has been timed
// (OpenBLAS's pool spins for a while after LibTorch's GEMMs and would steal
// the cores from the next vitscale op). Empty: no LibTorch figure for the row.
using TorchTimer = std::function<double()>;

// Tokens per image: --tokens, else the configuration's (patches + class token).
long long bench_tokens(const BenchOptions& o, const ViTConfig& cfg) { return o.tokens > 0 ? o.tokens : cfg.tokens(); }
long long bench_batch(const BenchOptions& o) { return o.batch > 0 ? o.batch : 128; }

void bench_ops(Backend& be, const BenchOptions& o, const ViTConfig& cfg, int threads, std::vector<BenchRow>& rows,
               std::vector<TorchTimer>& torch_timers) {
  const long long B = bench_batch(o), D = cfg.dim, H = cfg.heads, F = cfg.mlp_dim, K = cfg.num_classes;
  const long long T = bench_tokens(o, cfg);
  const long long R = B * T, hd = D / H;
  const std::string model = "D" + std::to_string(D) + " T" + std::to_string(T) + " B" + std::to_string(B);
  const auto time = [&](const std::function<void()>& f) { return median_us(o.warmup, o.reps, f); };
  auto add = [&](std::string op, std::string shape, double us, double bytes, double flops, std::string note = "",
                 TorchTimer torch = {}) {
    rows.push_back(BenchRow{model, std::move(op), "f32", std::move(shape), us, bytes, flops, -1, std::move(note)});
    torch_timers.push_back(std::move(torch));
  };
  // An op's forward and backward come from one LibTorch measurement: the
  // forward row's timer makes it, the backward row's reads it.
  const auto shared_timing = [] { return std::make_shared<TorchTiming>(); };
#ifdef VITSCALE_BENCH_TORCH
  const TorchRun on_cpu{false, o.warmup, o.reps};
#define VITSCALE_TORCH(expr) TorchTimer([=] { return (expr); })
#else
#define VITSCALE_TORCH(expr) TorchTimer()
#endif
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
    const double bwd = time([&] { be.linear_backward(dx, dw, db, y, x, w); });
    // LibTorch's GELU is its own op, so fc1's rows time linear(+gelu) forward and linear's backward.
    const auto fwd_t = shared_timing();
    add(std::string(g.gelu ? "linear+gelu " : "linear ") + g.name + " fwd", shape, fwd, 0, mnk,
        g.gelu ? "GEMM + bias + erf GELU" : "GEMM + bias",
        VITSCALE_TORCH((*fwd_t = torch_linear(on_cpu, R, g.N, g.K, g.gelu, false)).fwd_us));
    add(std::string("linear ") + g.name + " bwd", shape, bwd, 0, 2 * mnk, "d_in, d_weight +=, d_bias +=",
        VITSCALE_TORCH(g.gelu ? torch_linear(on_cpu, R, g.N, g.K, false, false).bwd_us : fwd_t->bwd_us));
    if (g.gelu) {
      auto d_pre = p.make({R, g.N});
      const double gb = time([&] { be.gelu_backward(d_pre, act, y); });
      add("gelu bwd", "n=" + std::to_string(R * g.N), gb, 3.0 * R * g.N * 4, 0, "d_out, pre read; d_pre written",
          VITSCALE_TORCH(torch_gelu_backward(on_cpu, R * g.N)));
    }
  }

  // ---- the MLP's backward as the model runs it: one fused op (fc2 bwd, GELU bwd, fc1 bwd) ----
  {
    auto x = p.make({R, D}), pre = p.make({R, F}), act = p.make({R, F}), d_out = p.make({R, D});
    auto fc1_w = p.make({F, D}, -0.05f, 0.05f), fc2_w = p.make({D, F}, -0.05f, 0.05f);
    auto d_in = p.make({R, D}), d_hidden = p.make({R, F}), d_fc1_w = p.make({F, D}), d_fc1_b = p.make({F}),
         d_fc2_w = p.make({D, F}), d_fc2_b = p.make({D});
    const MlpBackwardViews v{.d_in = d_in,
                             .d_fc1_weight = d_fc1_w,
                             .d_fc1_bias = d_fc1_b,
                             .d_fc2_weight = d_fc2_w,
                             .d_fc2_bias = d_fc2_b,
                             .d_hidden = d_hidden,
                             .d_out = d_out,
                             .in = x,
                             .pre = pre,
                             .act = act,
                             .fc1_weight = fc1_w,
                             .fc2_weight = fc2_w};
    const double us = time([&] { be.mlp_backward(v); });
    // LibTorch's figure: the sum of its three ops (fc2's and fc1's linear backward, GELU backward).
    add("mlp bwd", s_rd + " F=" + std::to_string(F), us, 0, 8.0 * R * D * F,
        "fc2 bwd, GELU bwd, fc1 bwd per row block; torch: the three ops' sum",
        VITSCALE_TORCH(torch_linear(on_cpu, R, D, F, false, false).bwd_us + torch_gelu_backward(on_cpu, R * F) +
                       torch_linear(on_cpu, R, F, D, false, false).bwd_us));
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
    const auto t = shared_timing();
    add("attention fwd", shape, fwd, 0, flops, "QKᵀ and PV; torch: timm's matmul-softmax-matmul (SDPA on torch 2)",
        VITSCALE_TORCH((*t = torch_attention(on_cpu, B, T, H, hd, false)).fwd_us));
    add("attention bwd", shape, bwd, 0, 3.5 * flops, "P recomputed; dQ, dK, dV", VITSCALE_TORCH(t->bwd_us));
  }

  // ---- layernorm and the residual stream ----
  {
    auto x = p.make({R, D}), a = p.make({R, D}), out = p.make({R, D}), dy = p.make({R, D}), dx = p.make({R, D});
    auto mean = p.make({R}), rstd = p.make({R}), g = p.make({D}, 0.5f, 1.5f), bt = p.make({D}), dg = p.make({D}),
         db = p.make({D});
    const auto t = shared_timing();
    add("layernorm fwd", s_rd, time([&] { be.layernorm(out, mean, rstd, x, g, bt); }), R * D * 8.0 + R * 8.0, 0, "",
        VITSCALE_TORCH((*t = torch_layernorm(on_cpu, R, D, false)).fwd_us));
    add("add_layernorm fwd", s_rd, time([&] { be.add_layernorm(dx, out, mean, rstd, x, a, g, bt); }),
        R * D * 16.0 + R * 8.0, 0, "residual add fused; torch: add, then layer_norm",
        VITSCALE_TORCH(torch_add_layernorm(on_cpu, R, D)));
    be.layernorm(out, mean, rstd, x, g, bt);  // valid statistics for the backward
    add("layernorm bwd", s_rd, time([&] { be.layernorm_backward(dx, dg, db, dy, x, mean, rstd, g); }),
        R * D * 16.0 + R * 8.0, 0, "d_in accumulates: read+write", VITSCALE_TORCH(t->bwd_us));
    add("add", "n=" + std::to_string(R * D), time([&] { be.add(out, x, a); }), R * D * 12.0, 0, "",
        VITSCALE_TORCH(torch_add(on_cpu, R * D)));
  }

  // ---- loss and optimizer (the whole model's parameters) ----
  {
    auto logits = p.make({B, K}, -3, 3), targets = p.make({B, K}, 0, 0.2f), losses = p.make({B}), dl = p.make({B, K});
    add("cross_entropy fwd+bwd", "B=" + std::to_string(B) + " K=" + std::to_string(K),
        time([&] { be.cross_entropy(losses, dl, logits, targets, 1.f / static_cast<float>(B)); }), B * K * 12.0, 0, "",
        VITSCALE_TORCH(torch_cross_entropy(on_cpu, B, K, false).both_us()));
    const ParamTable table(cfg);
    const long long n = table.total_numel();
    auto params = p.make({n}), grads = p.make({n}, -1e-3f, 1e-3f), m = p.make({n}, -1e-4f, 1e-4f),
         v = p.make({n}, 0, 1e-6f), norm = p.make({1});
    const auto segs = table.segments();
    AdamWHyper h;
    h.max_grad_norm = 1.f;
    add("grad norm²", "n=" + std::to_string(n), time([&] { be.grad_norm_squared(norm, grads); }), 4.0 * n, 0);
    // The optimizer step as training runs it: the global norm, then AdamW clipping by it.
    add("grad norm² + adamw (clip)", "n=" + std::to_string(n), time([&] {
          be.grad_norm_squared(norm, grads);
          be.adamw(params, grads, m, v, segs, h, norm);
        }),
        32.0 * n, 0, "params, grads, m, v read; params, m, v written; torch: clip_grad_norm_ + optim::AdamW",
        VITSCALE_TORCH(torch_clip_adamw(on_cpu, cfg)));
  }

  // ---- the linear layers' GEMMs as one plain OpenBLAS call each, on OpenBLAS's own threads ----
  // What a BLAS user (LibTorch's linear is one such call plus the bias) gets
  // at these shapes: OpenBLAS threads thin GEMMs (K or N = D) poorly, which is
  // why the linear rows cut M into blocks that each thread multiplies
  // single-threaded. After every backend op: OpenBLAS's pool spins for a
  // while after a call and would steal the cores from the next op.
  {
    const OpenBlasThreadsScope blas(threads, /*settle=*/true);
    for (const auto& [name, N, Kd] :
         {std::tuple{"qkv", 3 * D, D}, std::tuple{"proj", D, D}, std::tuple{"fc1", F, D}, std::tuple{"fc2", D, F}}) {
      const int m = static_cast<int>(R), n = static_cast<int>(N), k = static_cast<int>(Kd);
      auto x = p.make({R, Kd}), w = p.make({N, Kd}, -0.05f, 0.05f), y = p.make({R, N}), dx = p.make({R, Kd}),
           dw = p.make({N, Kd});
      const float *xs = x.as<float>(), *ws = w.as<float>(), *ys = y.as<float>();
      const std::string shape = "M=" + std::to_string(R) + " N=" + std::to_string(N) + " K=" + std::to_string(Kd);
      const double mnk = 2.0 * R * N * Kd;
      // y (M, N) = x (M, K) · wᵀ
      add(std::string("sgemm ") + name + " fwd", shape, time([&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, xs, k, ws, k, 0.f, y.as<float>(), n);
          }),
          0, mnk, "one multithreaded OpenBLAS call: y = x·wᵀ");
      // d_x (M, K) = dy (M, N) · w;  d_w (N, K) += dyᵀ · x
      add(std::string("sgemm ") + name + " bwd", shape, time([&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.f, ys, n, ws, k, 0.f, dx.as<float>(), k);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.f, ys, n, xs, k, 1.f, dw.as<float>(), k);
          }),
          0, 2 * mnk, "two multithreaded OpenBLAS calls: d_x = dy·w, d_w += dyᵀ·x");
    }
  }
#undef VITSCALE_TORCH
}

}  // namespace

int run_cpu_bench(const BenchOptions& o) {
  try {
    const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    ViTConfig cfg;  // the bench configuration (D128, T50) unless overridden
    if (o.dim > 0) cfg.dim = o.dim;
    if (o.heads > 0) cfg.heads = o.heads;
    if (o.mlp > 0) cfg.mlp_dim = o.mlp;
    cfg.validate();
    auto be = make_cpu_backend(threads);
    bool with_torch = false;
    std::string torch_line = "LibTorch: not built in";
#ifdef VITSCALE_BENCH_TORCH
    with_torch = !o.no_torch;
    torch_line = with_torch ? "beside LibTorch " + torch_version() + "'s CPU ops on the same shapes, " +
                                  std::to_string(threads) + " intra-op threads (its OpenBLAS too)"
                            : "LibTorch: skipped (--no-torch)";
    // One thread count for both sides, as vit_cpu_step_bench sets it.
    torch_ref::set_torch_threads(threads);
#endif
    // The shapes timed, not cfg.describe(): --tokens overrides the patch grid.
    const std::string shapes = "D=" + std::to_string(cfg.dim) + " H=" + std::to_string(cfg.heads) +
                               " F=" + std::to_string(cfg.mlp_dim) + " T=" + std::to_string(bench_tokens(o, cfg)) +
                               " K=" + std::to_string(cfg.num_classes) + ", batch " + std::to_string(bench_batch(o));
    const std::string header = "# vit_bench on " + be->name() + "\n\nCPU backend ops at the ViT step's shapes (" +
                               shapes + "), " + torch_line + "; median of " + std::to_string(o.reps) + " runs after " +
                               std::to_string(o.warmup) + " warm-ups.";
    std::cout << header << "\n";
    const Ceilings c = measure_ceilings(o, threads);
    std::vector<BenchRow> rows;
    std::vector<TorchTimer> torch_timers;
    bench_ops(*be, o, cfg, threads, rows, torch_timers);
    if (with_torch) {
      const OpenBlasThreadsScope blas(threads, /*settle=*/false);  // LibTorch's GEMMs run in OpenBLAS's own pool
      for (std::size_t i = 0; i < rows.size(); ++i)
        if (torch_timers[i]) rows[i].torch_us = torch_timers[i]();
    }
    write_reports(rows, c, o.out_dir,
                  header + "\n\nCeilings measured here: copy " + copy_curve_text(c) + ", SGEMM " +
                      fmt(c.compute_flops / 1e9, 1) + " GFLOP/s (" + c.compute_source + "'s, " +
                      std::to_string(threads) + " threads; the faster of OpenBLAS and vitscale's GEMM).");
  } catch (const std::exception& e) {
    std::cerr << "vit_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace vitscale::bench
