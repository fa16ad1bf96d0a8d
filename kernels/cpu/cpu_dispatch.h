// cpu_dispatch.h — how the CPU kernels get wide SIMD without -march=native.
//
// The build targets baseline x86-64 (SSE2) so that one binary runs on every CI
// machine. The few loops that are compute-bound (GELU's erf, attention's inner
// products, layernorm rows) are compiled twice with GCC's target_clones: once
// for x86-64-v3 (AVX2 + FMA) and once for the baseline; the loader picks the
// best clone once, at start-up (an ifunc). Results are deterministic on a given
// machine; FMA contraction makes the AVX2 clone differ from the SSE2 clone in the
// last bits, which is why tests compare with tolerances, never bit patterns
// across machines.
//
// Put VITSCALE_CPU_CLONES on a plain (non-OpenMP) worker function that is called
// from inside a parallel loop: GCC outlines OpenMP regions before it clones, so
// the outlined body would not be cloned.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VITSCALE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VITSCALE_CPU_CLONES
#endif
