// attention.cpp — picks the attention implementation per call (see attention.h).
//
// bf16 with a tensor-core head size and 16-byte aligned views → flash path;
// everything else → the fp32-arithmetic SIMT path, when the head's K and V fit
// in shared memory (T up to ~400 at hd = 64 on an H100); otherwise a clear error.
#include "kernels/cuda/attention.h"

#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_impl.h"
#include "kernels/cuda/cuda_check.h"

namespace vitscale::cuda {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

bool use_flash(DType dt, int hd, std::initializer_list<const void*> ptrs) {
  if (dt != DType::bf16 || !attn::flash_supports_head_dim(hd)) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

void check_simt(const char* op, int T, int hd, std::size_t smem, const AttentionDevice& dev) {
  if (hd > attn::kSimtMaxHeadDim)
    throw std::invalid_argument(std::string(op) + ": head dim " + std::to_string(hd) + " > " +
                                std::to_string(attn::kSimtMaxHeadDim) + " is not supported");
  if (smem > static_cast<std::size_t>(dev.max_smem_optin))
    throw std::invalid_argument(std::string(op) + ": T=" + std::to_string(T) + " hd=" + std::to_string(hd) +
                                " needs " + std::to_string(smem) + " bytes of shared memory for the fp32 path, the card "
                                "allows " + std::to_string(dev.max_smem_optin) +
                                "; use bf16 (tensor-core path, any T) or a shorter sequence");
}

}  // namespace

void attention_init(const AttentionDevice& dev) {
  attn::simt_init(dev.max_smem_optin);
  attn::flash_init(dev.max_smem_optin);
}

void attention_forward(cudaStream_t stream, DType dt, void* out, float* lse, const void* qkv, int B, int T, int H,
                       int hd, const AttentionDevice& dev) {
  if (static_cast<long long>(B) * T * H == 0) return;
  if (use_flash(dt, hd, {out, qkv})) {
    attn::flash_forward(stream, out, lse, qkv, B, T, H, hd, dev.max_smem_optin);
    return;
  }
  check_simt("attention", T, hd, attn::simt_forward_smem_bytes(T, hd), dev);
  attn::simt_forward(stream, dt, out, lse, qkv, B, T, H, hd);
}

std::size_t attention_backward_scratch_bytes(int B, int T, int H) {
  return static_cast<std::size_t>(B) * T * H * sizeof(float);
}

void attention_backward(cudaStream_t stream, DType dt, void* d_qkv, const void* d_out, const void* qkv,
                        const void* out, const float* lse, int B, int T, int H, int hd, float* scratch,
                        std::size_t scratch_bytes, const AttentionDevice& dev) {
  if (static_cast<long long>(B) * T * H == 0) return;
  if (scratch_bytes < attention_backward_scratch_bytes(B, T, H))
    throw std::logic_error("attention_backward: scratch too small for " + dims({{"B", B}, {"T", T}, {"H", H}}));
  const bool flash = use_flash(dt, hd, {d_qkv, d_out, qkv, out});
  if (!flash) check_simt("attention_backward", T, hd, attn::simt_backward_smem_bytes(T, hd), dev);
  attn::row_dot(stream, dt, scratch, d_out, out, B, T, H, hd);
  if (flash)
    attn::flash_backward(stream, d_qkv, d_out, qkv, lse, scratch, B, T, H, hd, dev.max_smem_optin);
  else
    attn::simt_backward(stream, dt, d_qkv, d_out, qkv, lse, scratch, B, T, H, hd);
}

}  // namespace vitscale::cuda
