// cuda_bench.cpp — vit_bench's CUDA side: microbenchmarks of every CUDA kernel (forward and backward) at
// ViT-Tiny/Small/Base shapes, and the whole training step, side by side with
// LibTorch when LibTorch has CUDA.
//
// Method (docs/cuda.md): the two ceilings are measured first in this process
// (a device-to-device copy for bandwidth, counting bytes read + written; a
// large bf16 GEMM through cuBLASLt for compute). Every op is timed with CUDA
// events around each call after warm-up; the median of --reps runs is
// reported. Inputs are random (never zeros) and rotated among enough copies to
// exceed 3× the L2, so timings measure HBM, not the cache. Each row prints
// time, achieved GB/s or TFLOP/s, the fraction of the measured ceiling, and
// LibTorch's time and our speed-up where LibTorch has the op.
//
// Output: bench_table.h's table on stdout, and results.csv + results.md in --out.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_handles.h"
#include "kernels/cuda/elementwise.h"
#include "runtime/adamw_optimizer.h"
#include "runtime/cuda_backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_model.h"
#include "tools/vit_bench/bench_table.h"
#include "tools/vit_bench/benches.h"
#ifdef VITSCALE_BENCH_TORCH
#include "tools/torch_ref/torch_vit.h"
#include "tools/vit_bench/torch_ops.h"
#endif

using namespace vitscale;

namespace {

using bench::BenchRow;
using bench::fmt;


struct Ctx {
  explicit Ctx(CudaBackend& b) : be(b) {}
  CudaBackend& be;
  int warmup = 10, reps = 50;
  double l2_bytes = 50e6;
  double copy_gbs = 0, gemm_tflops = 0;
  std::vector<BenchRow> rows;
  unsigned long long seed = 1;
};

// Random device tensors, kept alive for one benchmark.
struct Pool {
  explicit Pool(Ctx& c) : ctx(c) {}
  TensorView make(DType dt, std::initializer_list<std::int64_t> dims, float lo = -1.f, float hi = 1.f) {
    TensorView t(nullptr, dt, dims);
    bufs.push_back(ctx.be.allocate(std::max<std::size_t>(t.bytes(), 16), "bench tensor"));
    t.data = bufs.back().get();
    cuda::fill_uniform(ctx.be.compute_stream(), dt, t.data, t.numel(), ctx.seed++, lo, hi);
    return t;
  }
  Ctx& ctx;
  std::vector<Buffer> bufs;
};

// Copies of the inputs needed so that one pass over all of them is > 3× L2.
int rotation(const Ctx& c, double set_bytes) {
  return static_cast<int>(std::clamp(std::ceil(3.0 * c.l2_bytes / std::max(set_bytes, 1.0)), 1.0, 8.0));
}

double median_us(Ctx& c, const std::function<void(int)>& f) {
  const cudaStream_t s = c.be.compute_stream();
  for (int i = 0; i < c.warmup; ++i) f(i);
  c.be.synchronize();
  cuda::Event a, b;
  std::vector<float> t;
  t.reserve(static_cast<std::size_t>(c.reps));
  for (int r = 0; r < c.reps; ++r) {
    a.record(s);
    f(r);
    b.record(s);
    b.synchronize();
    t.push_back(b.elapsed_ms_since(a) * 1000.f);
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void measure_ceilings(Ctx& c) {
  // Bandwidth: 1 GiB device-to-device copy, bytes read + written.
  const std::size_t n = std::size_t{1} << 30;
  Buffer src = c.be.allocate(n, "copy source"), dst = c.be.allocate(n, "copy destination");
  cuda::fill_uniform(c.be.compute_stream(), DType::f32, src.get(), static_cast<long long>(n / 4), 7, -1, 1);
  const double copy_us = median_us(c, [&](int) { c.be.copy_device(dst.get(), src.get(), n); });
  c.copy_gbs = 2.0 * static_cast<double>(n) / (copy_us * 1e3);
  // Compute: 8192³ bf16 GEMM through the same cuBLASLt path as the model.
  Pool p(c);
  const long long m = 8192;
  auto x = p.make(DType::bf16, {m, m}), w = p.make(DType::bf16, {m, m}, -0.02f, 0.02f), y = p.make(DType::bf16, {m, m});
  const double gemm_us = median_us(c, [&](int) { c.be.linear(y, x, w, TensorView{}); });
  c.gemm_tflops = 2.0 * m * m * m / (gemm_us * 1e6);
  std::printf("ceilings: copy %.0f GB/s (read+write), bf16 GEMM %.0f TFLOP/s (8192^3, cuBLASLt)\n", c.copy_gbs,
              c.gemm_tflops);
}

struct BenchShape {
  std::string name;
  long long D, H, T, B, depth;
};

void bench_model(Ctx& c, const BenchShape& ms, bool with_torch) {
  const long long D = ms.D, H = ms.H, T = ms.T, B = ms.B, R = B * T, F = 4 * D, K = 100, hd = D / H;
  const std::string shape_rd = "R=" + std::to_string(R) + " D=" + std::to_string(D);
  auto add = [&](std::string op, DType dt, std::string shape, double us, double bytes, double flops, double torch_us,
                 std::string note = "") {
    c.rows.push_back(BenchRow{ms.name, std::move(op), dtype_name(dt), std::move(shape), us, bytes, flops, torch_us,
                         std::move(note)});
  };
#ifdef VITSCALE_BENCH_TORCH
  using namespace vitscale::bench;
#endif

  // ---- layernorm (f32 and bf16) ----
  for (DType dt : {DType::bf16, DType::f32}) {
    const double es = static_cast<double>(dtype_size(dt));
    Pool p(c);
    const int k = rotation(c, R * D * es * 3);
    std::vector<TensorView> x, dy, dx;
    for (int i = 0; i < k; ++i) x.push_back(p.make(dt, {R, D})), dy.push_back(p.make(dt, {R, D})), dx.push_back(p.make(dt, {R, D}));
    auto out = p.make(dt, {R, D}), mean = p.make(DType::f32, {R}), rstd = p.make(DType::f32, {R});
    auto g = p.make(dt, {D}, 0.5f, 1.5f), bt = p.make(dt, {D}), dg = p.make(DType::f32, {D}), db = p.make(DType::f32, {D});
    const double fwd = median_us(c, [&](int r) { c.be.layernorm(out, mean, rstd, x[r % k], g, bt); });
    c.be.layernorm(out, mean, rstd, x[0], g, bt);  // valid statistics for the backward
    const double bwd = median_us(c, [&](int r) { c.be.layernorm_backward(dx[r % k], dg, db, dy[r % k], x[r % k], mean, rstd, g); });
    double t_fwd = -1, t_bwd = -1;
#ifdef VITSCALE_BENCH_TORCH
    if (with_torch) {
      const auto t = torch_layernorm(TorchRun{true, c.warmup, c.reps}, R, D, dt == DType::bf16);
      t_fwd = t.fwd_us, t_bwd = t.bwd_us;
    }
#endif
    add("layernorm fwd", dt, shape_rd, fwd, R * D * es * 2 + R * 8.0, 0, t_fwd);
    add("layernorm bwd", dt, shape_rd, bwd, R * D * es * 4 + R * 8.0, 0, t_bwd, "d_in accumulates: read+write");
    if (dt == DType::bf16) {
      const double fused = median_us(c, [&](int r) {
        c.be.add_layernorm(dx[r % k], out, mean, rstd, x[r % k], dy[r % k], g, bt);
      });
      add("add_layernorm fwd", dt, shape_rd, fused, R * D * es * 4 + R * 8.0, 0, -1, "residual add fused");
    }
  }

  // ---- attention (bf16: tensor-core path) ----
  {
    const DType dt = DType::bf16;
    Pool p(c);
    const double set_bytes = B * T * D * 2.0 * 5;
    const int k = rotation(c, set_bytes);
    std::vector<TensorView> qkv, out, lse, dout, dqkv;
    for (int i = 0; i < k; ++i) {
      qkv.push_back(p.make(dt, {B, T, 3 * D})), out.push_back(p.make(dt, {B, T, D}));
      lse.push_back(p.make(DType::f32, {B, H, T})), dout.push_back(p.make(dt, {B, T, D}));
      dqkv.push_back(p.make(dt, {B, T, 3 * D}));
      c.be.attention(out.back(), lse.back(), qkv.back(), static_cast<int>(H));
    }
    const std::string shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                              " hd=" + std::to_string(hd);
    const double flops_fwd = 4.0 * B * H * T * T * hd;
    const double fwd = median_us(c, [&](int r) { c.be.attention(out[r % k], lse[r % k], qkv[r % k], static_cast<int>(H)); });
    const double bwd = median_us(c, [&](int r) {
      c.be.attention_backward(dqkv[r % k], dout[r % k], qkv[r % k], out[r % k], lse[r % k], static_cast<int>(H));
    });
    double t_fwd = -1, t_bwd = -1;
#ifdef VITSCALE_BENCH_TORCH
    if (with_torch) {
      const auto t = torch_attention(TorchRun{true, c.warmup, c.reps}, B, T, H, hd, true);
      t_fwd = t.fwd_us, t_bwd = t.bwd_us;
    }
#endif
    add("attention fwd", dt, shape, fwd, B * T * D * 2.0 * 4, flops_fwd, t_fwd, "torch: SDPA on (B,H,T,hd)");
    // Backward: S and dP recomputed in both kernels, dQ, dK, dV: 7 products of 2·T²·hd.
    add("attention bwd", dt, shape, bwd, B * T * D * 2.0 * 9, 3.5 * flops_fwd, t_bwd, "torch: SDPA bwd");
  }

  // ---- MLP and QKV GEMMs (bf16) ----
  {
    const DType dt = DType::bf16;
    Pool p(c);
    auto x = p.make(dt, {R, D}), wqkv = p.make(dt, {3 * D, D}, -0.05f, 0.05f), bqkv = p.make(dt, {3 * D});
    auto qkv = p.make(dt, {R, 3 * D});
    auto w1 = p.make(dt, {F, D}, -0.05f, 0.05f), b1 = p.make(dt, {F}), pre = p.make(dt, {R, F}), act = p.make(dt, {R, F});
    auto dpre = p.make(dt, {R, F}), dx = p.make(dt, {R, D}), dw1 = p.make(DType::f32, {F, D}), db1 = p.make(DType::f32, {F});
    const std::string s_qkv = "M=" + std::to_string(R) + " N=" + std::to_string(3 * D) + " K=" + std::to_string(D);
    const std::string s_fc1 = "M=" + std::to_string(R) + " N=" + std::to_string(F) + " K=" + std::to_string(D);
    const double t_qkv = median_us(c, [&](int) { c.be.linear(qkv, x, wqkv, bqkv); });
    add("linear qkv fwd", dt, s_qkv, t_qkv, 0, 2.0 * R * 3 * D * D, -1, "bias in the cuBLASLt epilogue");
    const double t_fc1 = median_us(c, [&](int) { c.be.linear_gelu(pre, act, x, w1, b1); });
    const double t_fc1b = median_us(c, [&](int) { c.be.linear_backward(dx, dw1, db1, dpre, x, w1); });
    const double t_gelu_b = median_us(c, [&](int) { c.be.gelu_backward(dpre, act, pre); });
    double tf = -1, tb = -1;
#ifdef VITSCALE_BENCH_TORCH
    if (with_torch) {
      const auto t = torch_linear(TorchRun{true, c.warmup, c.reps}, R, F, D, true, true);
      tf = t.fwd_us, tb = t.bwd_us;
    }
#endif
    add("linear+gelu fc1 fwd", dt, s_fc1, t_fc1, 0, 2.0 * R * F * D, tf, "GEMM+bias, then erf GELU pass");
    add("linear+gelu fc1 bwd", dt, s_fc1, t_fc1b + t_gelu_b, 0, 4.0 * R * F * D, tb, "d_in, dW, db + gelu bwd");
    add("gelu bwd", dt, "n=" + std::to_string(R * F), t_gelu_b, 3.0 * R * F * 2, 0, -1);
  }

  // ---- loss and optimizer ----
  {
    Pool p(c);
    auto logits = p.make(DType::bf16, {B, K}, -3, 3), targets = p.make(DType::f32, {B, K}, 0, 0.02f);
    auto losses = p.make(DType::f32, {B}), dl = p.make(DType::bf16, {B, K});
    const double t = median_us(c, [&](int) { c.be.cross_entropy(losses, dl, logits, targets, 1.f / B); });
    double tt = -1;
#ifdef VITSCALE_BENCH_TORCH
    if (with_torch) {
      const auto r = torch_cross_entropy(TorchRun{true, c.warmup, c.reps}, B, K, true);
      tt = r.both_us();
    }
#endif
    add("cross_entropy fwd+bwd", DType::bf16, "B=" + std::to_string(B) + " K=" + std::to_string(K), t,
        B * K * (2.0 + 4 + 2), 0, tt, "ours writes d_logits in the same pass");

    ViTConfig cfg;
    cfg.image_size = 32, cfg.channels = 3, cfg.patch_size = 4, cfg.dim = static_cast<int>(D), cfg.depth = static_cast<int>(ms.depth);
    cfg.heads = static_cast<int>(H), cfg.mlp_dim = static_cast<int>(F), cfg.num_classes = 10;
    const ParamTable table(cfg);
    const long long n = table.total_numel();
    auto params = p.make(DType::f32, {n}), grads = p.make(DType::f32, {n}, -1e-3f, 1e-3f);
    auto m = p.make(DType::f32, {n}, -1e-4f, 1e-4f), v = p.make(DType::f32, {n}, 0, 1e-6f), norm = p.make(DType::f32, {1});
    const auto segs = table.segments();
    AdamWHyper h;
    h.max_grad_norm = 1.f;
    const double t_norm = median_us(c, [&](int) { c.be.grad_norm_squared(norm, grads); });
    const double t_adam = median_us(c, [&](int) { c.be.adamw(params, grads, m, v, segs, h, norm); });
    double ta = -1;
#ifdef VITSCALE_BENCH_TORCH
    if (with_torch) ta = torch_fused_adamw(TorchRun{true, c.warmup, c.reps}, n);
#endif
    add("grad norm²", DType::f32, "n=" + std::to_string(n), t_norm, 4.0 * n, 0, -1, "deterministic two-pass");
    add("adamw (+clip)", DType::f32, "n=" + std::to_string(n), t_adam, 28.0 * n, 0, ta, "torch: _fused_adamw_, no clip");
  }
}

// Whole step: ViT-S/4 on 32×32 images, bf16, CUDA graph; images/s.
void bench_step(Ctx& c, int batch, int steps, bool with_torch) {
  const ViTConfig cfg = vit_preset("vit-small").config(3, 10, 32);
  ImageNorm norm;
  norm.channels = 3;
  for (int i = 0; i < 3; ++i) norm.mean[i] = 0.5f, norm.std[i] = 0.25f;
  vitscale::ModelShape shape{batch, 0};
  ViTModel model(cfg, c.be, shape, norm);
  model.init_parameters(1);
  AdamWOptimizer opt(c.be, model.table());
  Buffer images = c.be.allocate_host(static_cast<std::size_t>(batch) * 3 * 32 * 32);
  Buffer targets = c.be.allocate_host(static_cast<std::size_t>(batch) * 10 * sizeof(float));
  for (std::size_t i = 0; i < images.bytes(); ++i) images.as<std::uint8_t>()[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 24);
  for (int i = 0; i < batch * 10; ++i) targets.as<float>()[i] = (i % 10 == (i / 10) % 10) ? 1.f : 0.f;
  AdamWHyper h;
  h.max_grad_norm = 1.f;
  auto step_body = [&] {
    model.zero_grads();
    model.forward(1.f / static_cast<float>(batch));
    model.backward();
    opt.step(model.params(), model.grads(), h);
    model.sync_compute_params();
  };
  model.upload_batch(images.as<std::uint8_t>(), targets.as<float>(), batch);
  step_body();  // eager warm-up: sizes the scratch, uploads the segment table, picks GEMM algorithms
  c.be.synchronize();
  c.be.begin_capture();
  step_body();
  c.be.end_capture();
  auto one = [&](int s) {
    model.upload_batch(images.as<std::uint8_t>(), targets.as<float>(), batch);
    h.step = s + 1;
    c.be.set_adamw_hyper(h);
    c.be.replay();
  };
  for (int s = 0; s < 3; ++s) one(s);
  c.be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) one(s + 3);
  c.be.synchronize();
  const double ours_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  const double loss = [&] {
    double m = 0;
    for (float l : model.read_losses()) m += l;
    return m / batch;
  }();
  double torch_s = -1;
#ifdef VITSCALE_BENCH_TORCH
  if (with_torch) {
    torch_ref::TorchViT tv(cfg, norm, torch_ref::TorchOptions{"cuda", true});
    std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
    model.read_params(flat);
    tv.load_flat(flat);
    std::span<const std::uint8_t> im(images.as<std::uint8_t>(), images.bytes());
    std::span<const float> tg(targets.as<float>(), static_cast<std::size_t>(batch) * 10);
    for (int s = 1; s <= 3; ++s) h.step = s, tv.train_step(im, tg, batch, h);
    const auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) h.step = s + 4, tv.train_step(im, tg, batch, h);
    torch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / steps;
  }
#endif
  c.rows.push_back(BenchRow{"ViT-S/4", "train step (images/s)", "bf16", "B=" + std::to_string(batch) + " T=65",
                       ours_s * 1e6, 0, 0, torch_s > 0 ? torch_s * 1e6 : -1,
                       "ours: CUDA graph, " + std::to_string(batch / ours_s) + " img/s, loss " + std::to_string(loss) +
                           (torch_s > 0 ? "; torch eager autocast " + std::to_string(batch / torch_s) + " img/s" : "")});
}

}  // namespace

int vitscale::bench::run_cuda_bench(const BenchOptions& o) {
  const int device = o.cuda_device, warmup = o.warmup, reps = o.reps, batch = o.batch > 0 ? o.batch : 256;
  const bool no_torch = o.no_torch;
  try {
    if (cuda_device_count() == 0) {
      std::cerr << "vit_bench: no CUDA device\n";
      return 2;
    }
    CudaBackend be(device, DType::bf16, /*allow_tf32=*/true);
    Ctx c(be);
    c.warmup = warmup;
    c.reps = reps;
    c.l2_bytes = static_cast<double>(be.properties().l2CacheSize);
    bool with_torch = false;
    std::string torch_line = "LibTorch: not built in";
#ifdef VITSCALE_BENCH_TORCH
    with_torch = !no_torch && bench::torch_cuda_available();
    torch_line = "LibTorch " + bench::torch_version() + (with_torch ? " (CUDA)" : " (no CUDA: LibTorch columns empty)");
#endif
    const std::string header = "# vit_bench on " + be.name() + "\n\n" + torch_line + "; median of " +
                               std::to_string(reps) + " runs after " + std::to_string(warmup) +
                               " warm-ups; inputs rotated over > 3× L2.";
    std::cout << header << "\n";
    measure_ceilings(c);
    const std::vector<BenchShape> all{{"ViT-Ti/4", 192, 3, 65, batch, 12},
                                      {"ViT-S/4", 384, 6, 65, batch, 12},
                                      {"ViT-B/4", 768, 12, 65, batch, 12},
                                      {"ViT-B/16", 768, 12, 197, std::max(1, batch / 4), 12}};
    const std::vector<std::string> keys{"tiny", "small", "base", "base16"};
    std::vector<std::string> wanted;
    for (std::stringstream ss(o.models); ss.good();) {
      std::string k;
      std::getline(ss, k, ',');
      if (!k.empty()) wanted.push_back(k);
    }
    for (std::size_t i = 0; i < all.size(); ++i)
      if (std::find(wanted.begin(), wanted.end(), keys[i]) != wanted.end()) {
        std::cout << "benchmarking " << all[i].name << "...\n" << std::flush;
        bench_model(c, all[i], with_torch);
      }
    if (!o.no_step) {
      std::cout << "benchmarking the ViT-S/4 training step...\n" << std::flush;
      bench_step(c, o.step_batch, o.steps, with_torch);
    }
    bench::Ceilings ceilings;
    ceilings.copy_gbs = c.copy_gbs;
    ceilings.compute_flops = c.gemm_tflops * 1e12;
    bench::write_reports(c.rows, ceilings, o.out_dir,
                         header + "\n\nCeilings measured here: copy " + fmt(c.copy_gbs, 0) + " GB/s, bf16 GEMM " +
                             fmt(c.gemm_tflops, 0) + " TFLOP/s.");
  } catch (const std::exception& e) {
    std::cerr << "vit_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
