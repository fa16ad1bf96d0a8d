// cuda_backend.h — the CUDA implementation of the Backend interface.
//
// One compute stream per backend; every op is enqueued on it and returns
// without waiting (only copy_to_host and synchronize wait). Memory: allocate()
// is one cudaMalloc per call (the model asks once per arena); the backend's own
// buffers (cuBLASLt workspace, reduction scratch, optimizer scalars) are made
// once in the constructor, so a training step allocates nothing. The reduction
// scratch grows, at most once per new largest shape, only outside graph capture
// and before the first graph is captured: run one eager step first. (A later,
// larger eager shape, such as an evaluation batch, gets a new scratch buffer;
// the old one is kept alive for the graphs that captured its address.)
//
// Precision follows activation_dtype: f32 (TF32 GEMMs only when allowed) or
// bf16 activations and GEMM inputs with fp32 accumulation; parameter
// gradients, master weights and optimizer state are always f32.
//
// CUDA graphs: begin_capture() → the ops of one step → end_capture(slot); then
// replay(slot) per step. A few slots, so that a training step can keep its
// forward, backward and optimizer as separate graphs (vit_train --cuda-graphs).
// Inside a captured step nothing may allocate, wait for the host or copy from
// host memory (copy_to_device throws, like allocate and synchronize); AdamW
// reads lr and the step count from device memory, so before each replay call
// set_adamw_hyper(h) (it enqueues a tiny write on the compute stream, ordered
// before the replayed graph). Outside a capture, adamw() writes them itself.
//
// Only compiled with VITSCALE_HAVE_CUDA.
#pragma once

#ifdef VITSCALE_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace vitscale {

namespace cuda {
class LtGemm;
class Stream;
class Graph;
struct AdamWDeviceHyper;
template <unsigned kFlags>
struct EventTraits;
template <class Traits>
class HandlePool;
using OrderingEventPool = HandlePool<EventTraits<cudaEventDisableTiming>>;  // cuda_handles.h
}  // namespace cuda

// Number of CUDA devices the runtime sees; 0 when there is no driver or no GPU. Never throws.
int cuda_device_count() noexcept;

// Throws std::runtime_error when there is no usable GPU (none, too old: sm < 80),
// std::invalid_argument for a bad device index or dtype (f32 or bf16 only).
std::unique_ptr<Backend> make_cuda_backend(int device, DType activation_dtype, bool allow_tf32);

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, DType activation_dtype, bool allow_tf32);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  DeviceKind kind() const override { return DeviceKind::cuda; }
  std::string name() const override { return name_; }
  DType activation_dtype() const override { return act_; }

  Buffer allocate(std::size_t bytes, const std::string& what) override;
  Buffer allocate_host(std::size_t bytes) override;
  std::size_t device_memory_in_use() const override { return in_use_->load(); }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_device(void* dst, const void* src, std::size_t bytes) override;
  void fill_zero(TensorView t) override;
  void synchronize() override;
  // An ordering event (pooled, timing-free) recorded after the copies so far;
  // the fence's wait() synchronises on it from whichever thread reuses the memory.
  HostReadFence host_reads_done() override;
  void cast(TensorView dst, TensorView src) override;

  void image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                        int image_size) override;
  void embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) override;
  void embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                             TensorView d_tokens) override;

  void linear(TensorView out, TensorView in, TensorView weight, TensorView bias) override;
  void linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) override;
  void linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out, TensorView in,
                       TensorView weight) override;
  void gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) override;

  void layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                 TensorView beta) override;
  void add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a, TensorView b,
                     TensorView gamma, TensorView beta) override;
  void layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out, TensorView in,
                          TensorView mean, TensorView rstd, TensorView gamma) override;
  void add(TensorView out, TensorView a, TensorView b) override;

  void attention(TensorView out, TensorView lse, TensorView qkv, int heads) override;
  void attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out, TensorView lse,
                          int heads) override;

  void pool(TensorView pooled, TensorView x, Pooling mode) override;
  void pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) override;
  void cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                     float grad_scale) override;

  void grad_norm_squared(TensorView out, TensorView grads) override;
  void adamw(TensorView params, TensorView grads, TensorView m, TensorView v, std::span<const ParamSegment> segments,
             const AdamWHyper& hyper, TensorView grad_norm_sq) override;
  void weight_ema(TensorView ema, TensorView params, float decay) override;

  // ---- CUDA specifics -----------------------------------------------------------
  int device() const { return device_; }
  int sm_count() const { return sm_count_; }
  const cudaDeviceProp& properties() const;
  bool allow_tf32() const { return allow_tf32_; }
  // The stream every op runs on (the NCCL communicator orders against it with events).
  cudaStream_t compute_stream() const;

  // Graph capture of the compute stream (thread-local capture mode).
  static constexpr int kGraphSlots = 4;
  void begin_capture();
  void end_capture(int slot = 0);  // instantiates into `slot`, replacing what was there
  void replay(int slot = 0);       // launches slot's graph on the compute stream
  bool capturing() const { return capturing_; }
  bool has_graph(int slot = 0) const;
  // Writes AdamW's per-step scalars to device memory (enqueued on the compute
  // stream); call before each replay() of a graph that contains adamw().
  void set_adamw_hyper(const AdamWHyper& h);

 private:
  float* scratch(std::size_t bytes, const char* op);
  void require_not_capturing(const char* op, const char* why = "it would allocate or wait for the host") const;
  const void* segment_table(std::span<const ParamSegment> segments, std::int64_t n, int& count);
  bool any_graph() const;
  cuda::Graph& graph_slot(int slot, const char* op) const;

  int device_ = 0;
  DType act_ = DType::f32;
  bool allow_tf32_ = false;
  int sm_count_ = 0;
  int max_smem_optin_ = 0;
  std::string name_;
  std::unique_ptr<cudaDeviceProp> props_;
  std::shared_ptr<std::atomic<std::size_t>> in_use_;
  std::unique_ptr<cuda::Stream> stream_;
  std::unique_ptr<cuda::OrderingEventPool> ordering_events_;  // host read fences
  Buffer workspace_;   // cuBLASLt workspace
  Buffer scratch_;     // reductions' partial sums, attention's rowsum(dO∘O)
  std::vector<Buffer> retired_scratch_;  // outgrown scratch that captured graphs still point at
  Buffer hyper_;       // cuda::AdamWDeviceHyper
  Buffer segments_;    // cuda::DeviceSegment table for adamw
  std::vector<ParamSegment> cached_segments_;
  std::int64_t cached_segments_n_ = -1;
  int segment_count_ = 0;
  std::unique_ptr<cuda::LtGemm> gemm_;
  std::vector<std::unique_ptr<cuda::Graph>> graphs_;  // kGraphSlots
  bool capturing_ = false;
};

}  // namespace vitscale

#endif  // VITSCALE_HAVE_CUDA
