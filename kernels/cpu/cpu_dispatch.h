// cpu_dispatch.h — how the CPU kernels get wide SIMD without -march=native.
//
// The build targets baseline x86-64 (SSE2) so that one binary runs on every CI
// machine. The few loops that are compute-bound (GELU's erf, attention's inner
// products, layernorm rows) are compiled three times with GCC's target_clones:
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
// Put VITSCALE_CPU_CLONES on a plain (non-OpenMP) worker function that is called
// from inside a parallel loop: GCC outlines OpenMP regions before it clones, so
// the outlined body would not be cloned.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSCALE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VITSCALE_CPU_CLONES
#endif
