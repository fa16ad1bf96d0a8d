// cpu_dispatch.h — how the CPU kernels get wide SIMD without -march=native.
//
// The build targets baseline x86-64 (SSE2) so that one binary runs on every CI
// machine. The few loops that are compute-bound (GELU's erf, layernorm rows,
// AdamW) are compiled three times with GCC's target_clones:
// for x86-64-v4 (AVX-512: Intel Xeons, AMD Zen 4/5), for x86-64-v3 (AVX2 +
// FMA: older AMD EPYCs) and for the baseline; the loader picks the best clone
// once, at start-up (an ifunc). The v4 clone pays on the elementwise loops:
// GELU backward 1.9 -> 1.0 ms and the fc1 GELU epilogue 6.0 -> 4.9 ms at the
// CPU step's shapes, the whole step ~4% (vit_bench --device cpu and
// vit_cpu_step_bench, v3-only and v4 builds alternated, AMD EPYC with AVX-512,
// 2026-12-01). Results are deterministic on a given machine; FMA contraction
// makes the clones differ from each other in the last bits, which is why tests
// compare with tolerances, never bit patterns across machines.
//
// Attention's head kernels are not cloned but compiled once per level with
// VITSCALE_TARGET_X86_64_V3 / _V4 and picked per call (attention.h says why).
//
// Put VITSCALE_CPU_CLONES on a plain (non-OpenMP) worker function that is called
// from inside a parallel loop: GCC outlines OpenMP regions before it clones, so
// the outlined body would not be cloned.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSCALE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VITSCALE_CPU_CLONES
#endif

// Functions for one x86-64 level, called only after the CPU was asked
// (__builtin_cpu_supports("x86-64-v3") / ("x86-64-v4")).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSCALE_X86_LEVELS 1
#define VITSCALE_TARGET_X86_64_V3 __attribute__((target("arch=x86-64-v3")))
#define VITSCALE_TARGET_X86_64_V4 __attribute__((target("arch=x86-64-v4")))
#endif

namespace vitscale::cpu {

// The ISA a family of kernels runs: the one environment variable `var` names
// (one of `all`, spelled as name_of spells it), else `widest`. A name that is
// unknown, or one this CPU does not run, throws std::invalid_argument naming
// the variable, its value and the choices. For benchmarks and tests: the
// AVX2 kernels can be timed on an AVX-512 machine.
template <typename Isa, std::size_t N>
Isa isa_from_environment(const char* var, const Isa (&all)[N], const char* (*name_of)(Isa), bool (*supported)(Isa),
                         Isa widest) {
  const char* value = std::getenv(var);
  if (!value || !*value) return widest;
  std::string choices;
  for (std::size_t i = 0; i < N; ++i) {
    if (std::string(value) == name_of(all[i])) {
      if (!supported(all[i]))
        throw std::invalid_argument(std::string(var) + "=" + value + ": this CPU does not support it");
      return all[i];
    }
    choices += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(name_of(all[i]));
  }
  throw std::invalid_argument(std::string(var) + "=" + value + ": unknown (expected " + choices + ")");
}

}  // namespace vitscale::cpu
