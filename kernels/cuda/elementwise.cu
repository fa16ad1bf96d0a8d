// elementwise.cu — casts, residual add, erf GELU fwd/bwd, bias add (see elementwise.h).
//
// Each kernel is a grid-stride loop over 16-byte packs (8 bf16 or 4 f32) when
// every pointer is 16-byte aligned, then a scalar tail; these ops are pure
// bandwidth, so the pack width is the whole optimisation.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"

namespace vitscale::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(long long items) {
  // Enough blocks to fill any card several times; the loops stride over the rest.
  return static_cast<unsigned>(std::clamp(ceil_div(items, kThreads), 1LL, 65535LL));
}

// f(i, count) processes elements [i, i + count) with count = 8 (vector) or 1 (tail).
// Vector width 8 serves both dtypes: two f32 packs or one bf16 pack.
template <class D, class S>
__global__ void cast_kernel(D* __restrict__ dst, const S* __restrict__ src, long long n, bool vec) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  long long start = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  long long done = 0;
  if (vec) {
    const long long n8 = n / 8;
    for (long long i = start; i < n8; i += stride) {
      float f[8];
      if constexpr (sizeof(S) == 4) {
        const Pack<S> a = load_pack_stream(src + i * 8), b = load_pack_stream(src + i * 8 + 4);
#pragma unroll
        for (int e = 0; e < 4; ++e) f[e] = to_float(a.v[e]), f[4 + e] = to_float(b.v[e]);
      } else {
        const Pack<S> a = load_pack_stream(src + i * 8);
#pragma unroll
        for (int e = 0; e < 8; ++e) f[e] = to_float(a.v[e]);
      }
      if constexpr (sizeof(D) == 4) {
        Pack<D> a, b;
#pragma unroll
        for (int e = 0; e < 4; ++e) a.v[e] = from_float<D>(f[e]), b.v[e] = from_float<D>(f[4 + e]);
        store_pack(dst + i * 8, a);
        store_pack(dst + i * 8 + 4, b);
      } else {
        Pack<D> a;
#pragma unroll
        for (int e = 0; e < 8; ++e) a.v[e] = from_float<D>(f[e]);
        store_pack(dst + i * 8, a);
      }
    }
    done = n8 * 8;
  }
  for (long long i = done + start; i < n; i += stride) dst[i] = from_float<D>(to_float(src[i]));
}

// Binary/unary elementwise on one dtype: out[i] = op(x[i], y[i]) (y ignored for unary ops).
enum class Op { add, gelu, gelu_backward };

template <Op kOp> __device__ __forceinline__ float apply(float x, float y) {
  if constexpr (kOp == Op::add) return x + y;
  if constexpr (kOp == Op::gelu) return gelu_erf(x);
  return y * gelu_erf_grad(x);  // x = pre, y = d_out
}

// No __restrict__: gelu_backward may run in place (out == y).
template <class T, Op kOp>
__global__ void map_kernel(T* out, const T* x, const T* y, long long n, bool vec) {
  constexpr int V = Pack<T>::kSize;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long start = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  long long done = 0;
  if (vec) {
    const long long nv = n / V;
    for (long long i = start; i < nv; i += stride) {
      const Pack<T> a = load_pack(x + i * V);
      Pack<T> b;
      if (kOp != Op::gelu) b = load_pack(y + i * V);
      Pack<T> o;
#pragma unroll
      for (int e = 0; e < V; ++e) o.v[e] = from_float<T>(apply<kOp>(to_float(a.v[e]), kOp != Op::gelu ? to_float(b.v[e]) : 0.f));
      store_pack(out + i * V, o);
    }
    done = nv * V;
  }
  for (long long i = done + start; i < n; i += stride)
    out[i] = from_float<T>(apply<kOp>(to_float(x[i]), kOp != Op::gelu ? to_float(y[i]) : 0.f));
}

template <class T>
__global__ void bias_add_kernel(T* __restrict__ out, const T* __restrict__ bias, long long M, int N) {
  const long long n = M * N;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = from_float<T>(to_float(out[i]) + to_float(bias[i % N]));
}

template <Op kOp>
void map(cudaStream_t stream, DType dt, void* out, const void* x, const void* y, long long n, const char* op) {
  if (n == 0) return;
  const bool vec = aligned16(out) && aligned16(x) && (y == nullptr || aligned16(y));
  if (dt == DType::f32)
    map_kernel<float, kOp><<<grid_for(n / 4 + 1), kThreads, 0, stream>>>(
        static_cast<float*>(out), static_cast<const float*>(x), static_cast<const float*>(y), n, vec);
  else if (dt == DType::bf16)
    map_kernel<bf16, kOp><<<grid_for(n / 8 + 1), kThreads, 0, stream>>>(
        static_cast<bf16*>(out), static_cast<const bf16*>(x), static_cast<const bf16*>(y), n, vec);
  else
    throw std::invalid_argument(std::string(op) + ": dtype " + dtype_name(dt) + " is not f32 or bf16");
  VS_LAUNCH_CHECK(std::string(op) + " (" + dims({{"n", n}}) + " " + dtype_name(dt) + ")");
}

template <class T>
__global__ void fill_uniform_kernel(T* x, long long n, unsigned long long seed, float lo, float hi) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    unsigned long long z = seed + 0x9E3779B97F4A7C15ull * static_cast<unsigned long long>(i + 1);  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.f / 16777216.f);
    x[i] = from_float<T>(lo + (hi - lo) * u);
  }
}

}  // namespace

void fill_uniform(cudaStream_t stream, DType dt, void* x, long long n, unsigned long long seed, float lo, float hi) {
  if (n == 0) return;
  if (dt == DType::f32)
    fill_uniform_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<float*>(x), n, seed, lo, hi);
  else if (dt == DType::bf16)
    fill_uniform_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<bf16*>(x), n, seed, lo, hi);
  else
    throw std::invalid_argument(std::string("fill_uniform: dtype ") + dtype_name(dt) + " is not f32 or bf16");
  VS_LAUNCH_CHECK("fill_uniform (" + dims({{"n", n}}) + ")");
}

void cast(cudaStream_t stream, DType dst_type, void* dst, DType src_type, const void* src, long long n) {
  if (n == 0) return;
  const bool vec = aligned16(dst) && aligned16(src);
  const unsigned grid = grid_for(n / 8 + 1);
  const auto f32 = DType::f32, b16 = DType::bf16;
  if (dst_type == f32 && src_type == f32)
    cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(dst), static_cast<const float*>(src), n, vec);
  else if (dst_type == b16 && src_type == f32)
    cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<bf16*>(dst), static_cast<const float*>(src), n, vec);
  else if (dst_type == f32 && src_type == b16)
    cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(dst), static_cast<const bf16*>(src), n, vec);
  else if (dst_type == b16 && src_type == b16)
    cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<bf16*>(dst), static_cast<const bf16*>(src), n, vec);
  else
    throw std::invalid_argument(std::string("cast: ") + dtype_name(src_type) + " → " + dtype_name(dst_type) +
                                " is not supported (f32/bf16 only)");
  VS_LAUNCH_CHECK("cast (" + dims({{"n", n}}) + " " + dtype_name(src_type) + "→" + dtype_name(dst_type) + ")");
}

void add(cudaStream_t stream, DType dt, void* out, const void* a, const void* b, long long n) {
  map<Op::add>(stream, dt, out, a, b, n, "add");
}

void gelu_forward(cudaStream_t stream, DType dt, void* out, const void* pre, long long n) {
  map<Op::gelu>(stream, dt, out, pre, nullptr, n, "linear_gelu (gelu)");
}

void gelu_backward(cudaStream_t stream, DType dt, void* d_pre, const void* d_out, const void* pre, long long n) {
  map<Op::gelu_backward>(stream, dt, d_pre, pre, d_out, n, "gelu_backward");
}

void bias_add_rows(cudaStream_t stream, DType dt, void* out, const void* bias, long long M, int N) {
  if (M == 0 || N == 0) return;
  if (dt == DType::f32)
    bias_add_kernel<<<grid_for(M * N), kThreads, 0, stream>>>(static_cast<float*>(out), static_cast<const float*>(bias), M, N);
  else
    bias_add_kernel<<<grid_for(M * N), kThreads, 0, stream>>>(static_cast<bf16*>(out), static_cast<const bf16*>(bias), M, N);
  VS_LAUNCH_CHECK("linear (bias add, " + dims({{"M", M}, {"N", N}}) + ")");
}

}  // namespace vitscale::cuda
