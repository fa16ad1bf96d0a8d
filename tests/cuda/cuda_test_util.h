// cuda_test_util.h — CUDA-vs-CPU op tests through the Backend interface.
//
// Each test builds the same inputs on the CPU backend (fp32 reference) and on
// the CUDA backend (f32 without TF32, or bf16), runs one op on both, and
// compares every output by ‖gpu − cpu‖ / ‖cpu‖: ≤ 1e-5 in f32, ≤ 1e-2 in bf16.
// For bf16 the inputs are rounded to bf16 first, so both sides see the same
// values. Outputs are poisoned with NaN before the op (unwritten elements fail);
// accumulating outputs start from random values (the += is checked too).
// Inputs are fresh on every run (seed printed on failure; VITSCALE_TEST_SEED
// pins it). Without a GPU every test is skipped (tests/test_skip.h: "skipped: no
// CUDA device", and CTest counts it skipped, not passed).
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cuda_backend.h"
#include "tests/test_skip.h"

namespace vitscale::cuda_test {

using Outs = std::vector<std::vector<float>>;  // a test's outputs, in order

inline bool have_gpu() { return cuda_device_count() > 0; }

#define VS_REQUIRE_GPU()                                               \
  do {                                                                 \
    if (!::vitscale::cuda_test::have_gpu()) VS_SKIP("no CUDA device"); \
  } while (0)

inline std::uint64_t fresh_seed() {
  if (const char* s = std::getenv("VITSCALE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

// bf16 round-to-nearest-even, like __float2bfloat16 (NaN stays NaN).
inline std::uint16_t to_bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float from_bf16_bits(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return from_bf16_bits(to_bf16_bits(f)); }
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& x : v) x = round_bf16(x);
  return v;
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : e_(seed) {}
  std::vector<float> normals(std::size_t n, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(e_);
    return v;
  }
  std::vector<float> uniforms(std::size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(e_);
    return v;
  }
  std::vector<std::uint8_t> bytes(std::size_t n) {
    std::uniform_int_distribution<int> d(0, 255);
    std::vector<std::uint8_t> v(n);
    for (auto& x : v) x = static_cast<std::uint8_t>(d(e_));
    return v;
  }
  std::vector<float> distributions(std::size_t rows, std::size_t k) {
    auto v = uniforms(rows * k, 0.f, 1.f);
    for (std::size_t r = 0; r < rows; ++r) {
      double s = 0;
      for (std::size_t i = 0; i < k; ++i) s += v[r * k + i];
      for (std::size_t i = 0; i < k; ++i) v[r * k + i] = static_cast<float>(v[r * k + i] / s);
    }
    return v;
  }

 private:
  std::mt19937_64 e_;
};

// Tensors of one backend for one test: uploads, poisoned outputs, downloads.
class Env {
 public:
  Env(Backend& be, DType act) : be_(be), act_(act) {}
  Backend& be() { return be_; }
  DType act() const { return act_; }

  TensorView input(DType dt, std::initializer_list<std::int64_t> dims, const std::vector<float>& host) {
    TensorView t = alloc(dt, dims);
    REQUIRE(static_cast<std::size_t>(t.numel()) == host.size());
    upload(t, host);
    return t;
  }
  TensorView input_u8(std::initializer_list<std::int64_t> dims, const std::vector<std::uint8_t>& host) {
    TensorView t = alloc(DType::u8, dims);
    REQUIRE(static_cast<std::size_t>(t.numel()) == host.size());
    be_.copy_to_device(t.data, host.data(), host.size());
    be_.synchronize();
    return t;
  }
  // An output poisoned with NaN (all bits set: NaN in f32 and bf16).
  TensorView output(DType dt, std::initializer_list<std::int64_t> dims) {
    TensorView t = alloc(dt, dims);
    std::vector<std::uint8_t> nan(t.bytes(), 0xff);
    be_.copy_to_device(t.data, nan.data(), nan.size());
    be_.synchronize();
    return t;
  }
  std::vector<float> read(const TensorView& t) {
    std::vector<std::uint8_t> raw(t.bytes());
    be_.copy_to_host(raw.data(), t.data, raw.size());
    std::vector<float> out(static_cast<std::size_t>(t.numel()));
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (t.dtype == DType::f32) {
        std::memcpy(&out[i], raw.data() + 4 * i, 4);
      } else if (t.dtype == DType::bf16) {
        std::uint16_t b;
        std::memcpy(&b, raw.data() + 2 * i, 2);
        out[i] = from_bf16_bits(b);
      } else {
        FAIL("read: unsupported dtype");
      }
    }
    return out;
  }
  void upload(const TensorView& t, const std::vector<float>& host) {
    std::vector<std::uint8_t> raw(t.bytes());
    for (std::size_t i = 0; i < host.size(); ++i) {
      if (t.dtype == DType::f32) {
        std::memcpy(raw.data() + 4 * i, &host[i], 4);
      } else {
        const std::uint16_t b = to_bf16_bits(host[i]);
        std::memcpy(raw.data() + 2 * i, &b, 2);
      }
    }
    be_.copy_to_device(t.data, raw.data(), raw.size());
    be_.synchronize();
  }

 private:
  TensorView alloc(DType dt, std::initializer_list<std::int64_t> dims) {
    TensorView t(nullptr, dt, dims);
    keep_.push_back(be_.allocate(std::max<std::size_t>(t.bytes(), 16), "test tensor"));
    t.data = keep_.back().get();
    return t;
  }
  Backend& be_;
  DType act_;
  std::vector<Buffer> keep_;
};

// ‖a − b‖ / ‖b‖ (∞ when a has a NaN/∞ or the sizes differ).
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline double tolerance(DType act) { return act == DType::bf16 ? 1e-2 : 1e-5; }

// The backends of one test: the CPU reference and a CUDA backend per dtype
// (TF32 off, so f32 GEMMs are exact fp32).
struct Backends {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<Backend> gpu_f32 = make_cuda_backend(0, DType::f32, false);
  std::unique_ptr<Backend> gpu_bf16 = make_cuda_backend(0, DType::bf16, false);
  Backend& gpu(DType act) { return act == DType::bf16 ? *gpu_bf16 : *gpu_f32; }
};

inline Backends& backends() {
  static Backends b;  // created on first use inside a test (never at static-init time)
  return b;
}

#define VS_CHECK_CLOSE(name, got, ref, act)                                           \
  do {                                                                                \
    const double vs_err_ = ::vitscale::cuda_test::rel_error((got), (ref));           \
    INFO(name << ": relative error " << vs_err_ << " (tolerance "                    \
              << ::vitscale::cuda_test::tolerance(act) << ", " << dtype_name(act) << ")"); \
    CHECK(vs_err_ <= ::vitscale::cuda_test::tolerance(act));                         \
  } while (0)

}  // namespace vitscale::cuda_test

namespace vitscale::cuda_test {

// Runs `run(env)` on the CPU (f32) and on the CUDA backend of `act`, then
// compares each returned output. `run` returns the outputs in `names` order.
template <class F> void compare_with_cpu(DType act, std::initializer_list<const char*> names, F&& run) {
  Backends& bs = backends();
  Env cpu_env(*bs.cpu, DType::f32);
  Env gpu_env(bs.gpu(act), act);
  const std::vector<std::vector<float>> ref = run(cpu_env);
  const std::vector<std::vector<float>> got = run(gpu_env);
  REQUIRE(ref.size() == names.size());
  REQUIRE(got.size() == names.size());
  std::size_t i = 0;
  for (const char* n : names) {
    VS_CHECK_CLOSE(n, got[i], ref[i], act);
    ++i;
  }
}

// Host data as the test's dtype will see it (bf16-rounded in bf16 runs).
inline std::vector<float> as_act(std::vector<float> v, DType act) {
  return act == DType::bf16 ? round_bf16(std::move(v)) : v;
}

}  // namespace vitscale::cuda_test
