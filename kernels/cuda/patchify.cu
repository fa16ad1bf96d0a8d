// patchify.cu — image → patches (fused u8 → float normalisation and optional
// bilinear resize), class token + position embedding fwd/bwd, token pooling.
//
// Patchify runs one thread per output element, so writes are coalesced along
// the patch vector; the u8 reads are tiny and mostly cached (each source pixel
// is read by at most 4 neighbouring outputs when resizing). The resize follows
// PyTorch's F.interpolate(mode='bilinear', align_corners=False) on the raw
// 0..255 values (no rounding back to u8), then normalises.
#include <algorithm>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/patchify.h"

namespace vitscale::cuda {
namespace {

constexpr int kThreads = 256;

struct NormParams {
  float mean[3];
  float std[3];
};

unsigned blocks_for(long long n) { return static_cast<unsigned>(std::clamp(ceil_div(n, kThreads), 1LL, 1LL << 20)); }

template <class T>
__global__ void image_to_patches_kernel(T* __restrict__ patches, const std::uint8_t* __restrict__ images, int B, int C,
                                        int S, int I, int P, NormParams norm) {
  const int gp = I / P, np = gp * gp, cpp = C * P * P;
  const long long total = static_cast<long long>(B) * np * cpp;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int k = static_cast<int>(idx % cpp);
    const long long bp = idx / cpp;
    const int patch = static_cast<int>(bp % np);
    const int b = static_cast<int>(bp / np);
    const int c = k / (P * P), py = (k / P) % P, px = k % P;
    const int y = (patch / gp) * P + py, x = (patch % gp) * P + px;
    const std::uint8_t* img = images + (static_cast<long long>(b) * C + c) * S * S;
    float v;
    if (S == I) {
      v = static_cast<float>(img[y * S + x]);
    } else {
      // Tap positions in double, like the CPU reference: at 32 → 224 a float
      // coordinate would move the weights by ~1e-6, visible at the 1e-5 test bar.
      const double scale = static_cast<double>(S) / static_cast<double>(I);
      const double sy = fmax((static_cast<double>(y) + 0.5) * scale - 0.5, 0.0);
      const double sx = fmax((static_cast<double>(x) + 0.5) * scale - 0.5, 0.0);
      const int y0 = min(static_cast<int>(sy), S - 1), x0 = min(static_cast<int>(sx), S - 1);
      const int y1 = min(y0 + 1, S - 1), x1 = min(x0 + 1, S - 1);
      const float ly1 = static_cast<float>(sy - y0), lx1 = static_cast<float>(sx - x0);
      const float ly0 = 1.f - ly1, lx0 = 1.f - lx1;
      v = ly0 * (lx0 * img[y0 * S + x0] + lx1 * img[y0 * S + x1]) + ly1 * (lx0 * img[y1 * S + x0] + lx1 * img[y1 * S + x1]);
    }
    patches[idx] = from_float<T>((v / 255.f - norm.mean[c]) / norm.std[c]);
  }
}

template <class T>
__global__ void embed_forward_kernel(T* __restrict__ tokens, const T* __restrict__ patch_emb, const T* __restrict__ cls,
                                     const T* __restrict__ pos, int B, int T_, int D) {
  const long long total = static_cast<long long>(B) * T_ * D;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const int first_patch = cls != nullptr ? 1 : 0;
  const int np = T_ - first_patch;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int d = static_cast<int>(i % D);
    const int t = static_cast<int>((i / D) % T_);
    const long long b = i / (static_cast<long long>(T_) * D);
    const float src = t < first_patch ? to_float(cls[d]) : to_float(patch_emb[(b * np + (t - first_patch)) * D + d]);
    tokens[i] = from_float<T>(src + to_float(pos[static_cast<long long>(t) * D + d]));
  }
}

template <class T>
__global__ void embed_backward_copy_kernel(T* __restrict__ d_patch_emb, const T* __restrict__ d_tokens, int B, int T_,
                                           int D, int first_patch) {
  const int np = T_ - first_patch;
  const long long total = static_cast<long long>(B) * np * D;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int d = static_cast<int>(i % D);
    const long long bt = i / D;
    const long long b = bt / np, t = bt % np + first_patch;
    d_patch_emb[i] = d_tokens[(b * T_ + t) * D + d];
  }
}

// Thread per (t, d): sums over the batch in order.
template <class T>
__global__ void embed_backward_params_kernel(float* __restrict__ d_cls, float* __restrict__ d_pos,
                                             const T* __restrict__ d_tokens, int B, int T_, int D) {
  const long long td = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (td >= static_cast<long long>(T_) * D) return;
  float s = 0.f;
  for (int b = 0; b < B; ++b) s += to_float(d_tokens[static_cast<long long>(b) * T_ * D + td]);
  if (d_pos != nullptr) d_pos[td] += s;
  if (d_cls != nullptr && td < D) d_cls[td] += s;
}

template <class T>
__global__ void pool_forward_kernel(T* __restrict__ pooled, const T* __restrict__ x, int B, int T_, int D, bool mean) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(B) * D) return;
  const long long b = i / D, d = i % D;
  const T* row = x + b * T_ * D + d;
  if (!mean) {
    pooled[i] = row[0];
    return;
  }
  float s = 0.f;
  for (int t = 0; t < T_; ++t) s += to_float(row[static_cast<long long>(t) * D]);
  pooled[i] = from_float<T>(s / static_cast<float>(T_));
}

template <class T>
__global__ void pool_backward_kernel(T* __restrict__ d_x, const T* __restrict__ d_pooled, int B, int T_, int D,
                                     bool mean) {
  const long long total = static_cast<long long>(B) * T_ * D;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long d = i % D, t = (i / D) % T_, b = i / (static_cast<long long>(T_) * D);
    const float g = to_float(d_pooled[b * D + d]);
    d_x[i] = from_float<T>(mean ? g / static_cast<float>(T_) : (t == 0 ? g : 0.f));
  }
}

template <class F> void dispatch(DType dt, const char* op, F&& f) {
  if (dt == DType::f32)
    f(float{});
  else if (dt == DType::bf16)
    f(bf16{});
  else
    throw std::invalid_argument(std::string(op) + ": dtype " + dtype_name(dt) + " is not f32 or bf16");
}

}  // namespace

void image_to_patches(cudaStream_t stream, DType dt, void* patches, const std::uint8_t* images, int B, int C, int S,
                      int I, int P, const float* mean, const float* std) {
  if (C < 1 || C > 3) throw std::invalid_argument("image_to_patches: channels must be 1..3, got " + std::to_string(C));
  NormParams norm{};
  for (int c = 0; c < C; ++c) norm.mean[c] = mean[c], norm.std[c] = std[c];
  const long long total = static_cast<long long>(B) * (I / P) * (I / P) * C * P * P;
  if (total == 0) return;
  dispatch(dt, "image_to_patches", [&](auto tag) {
    using T = decltype(tag);
    image_to_patches_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<T*>(patches), images, B, C, S, I,
                                                                          P, norm);
  });
  VS_LAUNCH_CHECK("image_to_patches (" + dims({{"B", B}, {"C", C}, {"S", S}, {"I", I}, {"P", P}}) + ")");
}

void embed_tokens_forward(cudaStream_t stream, DType dt, void* tokens, const void* patch_emb, const void* cls,
                          const void* pos, int B, int T, int D) {
  const long long total = static_cast<long long>(B) * T * D;
  if (total == 0) return;
  dispatch(dt, "embed_tokens", [&](auto tag) {
    using E = decltype(tag);
    embed_forward_kernel<E><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<E*>(tokens), static_cast<const E*>(patch_emb), static_cast<const E*>(cls),
        static_cast<const E*>(pos), B, T, D);
  });
  VS_LAUNCH_CHECK("embed_tokens (" + dims({{"B", B}, {"T", T}, {"D", D}}) + ")");
}

void embed_tokens_backward(cudaStream_t stream, DType dt, void* d_patch_emb, float* d_cls, float* d_pos,
                           const void* d_tokens, int B, int T, int D, bool has_cls) {
  if (static_cast<long long>(B) * T * D == 0) return;
  // Built only if a launch fails (VS_CUDA_CHECK evaluates its context then).
  const auto where = [&] { return "embed_tokens_backward (" + dims({{"B", B}, {"T", T}, {"D", D}}) + ")"; };
  dispatch(dt, "embed_tokens_backward", [&](auto tag) {
    using E = decltype(tag);
    const int first = has_cls ? 1 : 0;
    const long long n_copy = static_cast<long long>(B) * (T - first) * D;
    if (d_patch_emb != nullptr && n_copy > 0) {
      embed_backward_copy_kernel<E><<<blocks_for(n_copy), kThreads, 0, stream>>>(
          static_cast<E*>(d_patch_emb), static_cast<const E*>(d_tokens), B, T, D, first);
      VS_LAUNCH_CHECK(where());
    }
    if (d_pos != nullptr || d_cls != nullptr) {
      embed_backward_params_kernel<E><<<blocks_for(static_cast<long long>(T) * D), kThreads, 0, stream>>>(
          has_cls ? d_cls : nullptr, d_pos, static_cast<const E*>(d_tokens), B, T, D);
      VS_LAUNCH_CHECK(where());
    }
  });
}

void pool_forward(cudaStream_t stream, DType dt, void* pooled, const void* x, int B, int T, int D, bool mean_pool) {
  const long long n = static_cast<long long>(B) * D;
  if (n == 0) return;
  dispatch(dt, "pool", [&](auto tag) {
    using E = decltype(tag);
    pool_forward_kernel<E><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<E*>(pooled), static_cast<const E*>(x), B,
                                                                  T, D, mean_pool);
  });
  VS_LAUNCH_CHECK("pool (" + dims({{"B", B}, {"T", T}, {"D", D}}) + ")");
}

void pool_backward(cudaStream_t stream, DType dt, void* d_x, const void* d_pooled, int B, int T, int D,
                   bool mean_pool) {
  const long long n = static_cast<long long>(B) * T * D;
  if (n == 0) return;
  dispatch(dt, "pool_backward", [&](auto tag) {
    using E = decltype(tag);
    pool_backward_kernel<E><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<E*>(d_x),
                                                                   static_cast<const E*>(d_pooled), B, T, D, mean_pool);
  });
  VS_LAUNCH_CHECK("pool_backward (" + dims({{"B", B}, {"T", T}, {"D", D}}) + ")");
}

}  // namespace vitscale::cuda
