// elementwise.h — one-pass elementwise ops: dtype casts, the residual add,
// exact-erf GELU forward/backward, and the bias add used when cuBLASLt has no
// bias epilogue for a shape. All of them stream 16-byte packs when the views
// are aligned, with a scalar tail.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/tensor.h"

namespace vitscale::cuda {

// dst (n) = src (n) converted; dtypes f32 / bf16 in any combination (f32 → bf16 rounds to nearest even).
void cast(cudaStream_t stream, DType dst_type, void* dst, DType src_type, const void* src, long long n);
// out (n) = a + b, all of `dt`.
void add(cudaStream_t stream, DType dt, void* out, const void* a, const void* b, long long n);
// out (n) = gelu(pre) (exact erf form).
void gelu_forward(cudaStream_t stream, DType dt, void* out, const void* pre, long long n);
// d_pre (n) = d_out ⊙ gelu'(pre); d_pre may alias d_out.
void gelu_backward(cudaStream_t stream, DType dt, void* d_pre, const void* d_out, const void* pre, long long n);
// out (M, N) += bias (N).
void bias_add_rows(cudaStream_t stream, DType dt, void* out, const void* bias, long long M, int N);

// x (n) = uniform in [lo, hi) from a counter hash of (seed, i): benchmark and
// test inputs without a host round trip.
void fill_uniform(cudaStream_t stream, DType dt, void* x, long long n, unsigned long long seed, float lo, float hi);

}  // namespace vitscale::cuda
