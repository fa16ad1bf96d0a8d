// cuda_backend.cpp — CudaBackend: shape checks, then one launcher call per op
// (kernels/cuda/*). See cuda_backend.h for the memory, precision and graph rules.
//
// Every op checks its views the way the CPU backend does (std::invalid_argument
// naming the op and the shapes) and dispatches on the activation tensors' dtype
// (f32 or bf16, all of one op's activations alike); parameter gradients,
// mean/rstd/lse, losses and targets are f32.
#ifdef VITSCALE_HAVE_CUDA

#include "runtime/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_handles.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm_lt.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/patchify.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/weight_ema.h"

namespace vitscale {

namespace {

constexpr float kLayerNormEps = 1e-6f;                      // timm's ViT
constexpr std::size_t kWorkspaceBytes = 32u << 20;          // cuBLASLt's recommendation for Hopper
constexpr std::size_t kInitialScratchBytes = 8u << 20;      // covers ViT-B shapes on a 132-SM card
constexpr std::size_t kMiB = 1u << 20;

std::string mib(std::size_t b) { return std::to_string((b + kMiB / 2) / kMiB) + " MiB"; }

// (rows, last dim) of a view: every leading dimension folds into rows.
struct Rows {
  long long rows;
  int cols;
};
Rows rows_of(const char* op, const char* arg, const TensorView& t) {
  if (t.rank < 1) throw std::invalid_argument(std::string(op) + ": " + arg + " is " + t.describe() + ", expected rank >= 1");
  const long long c = t.dim(-1);
  return {c == 0 ? 0 : t.numel() / c, static_cast<int>(c)};
}

void expect_float_act(const char* op, const char* arg, const TensorView& t) {
  if (t.dtype != DType::f32 && t.dtype != DType::bf16)
    throw std::invalid_argument(std::string(op) + ": " + arg + " is " + t.describe() + ", expected f32 or bf16");
}
void expect_same_dtype(const char* op, const char* arg, const TensorView& t, DType dt) {
  if (!t.empty() && t.dtype != dt)
    throw std::invalid_argument(std::string(op) + ": " + arg + " is " + t.describe() + ", expected dtype " + dtype_name(dt));
}
void expect_numel(const char* op, const char* arg, const TensorView& t, long long n) {
  if (t.numel() != n)
    throw std::invalid_argument(std::string(op) + ": " + arg + " is " + t.describe() + ", expected " +
                                std::to_string(n) + " elements");
}
void expect_present(const char* op, const char* arg, const TensorView& t) {
  if (t.empty()) throw std::invalid_argument(std::string(op) + ": " + arg + " is empty");
}

}  // namespace

int cuda_device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(int device, DType activation_dtype, bool allow_tf32) {
  return std::make_unique<CudaBackend>(device, activation_dtype, allow_tf32);
}

CudaBackend::CudaBackend(int device, DType activation_dtype, bool allow_tf32)
    : device_(device), act_(activation_dtype), allow_tf32_(allow_tf32),
      in_use_(std::make_shared<std::atomic<std::size_t>>(0)) {
  if (act_ != DType::f32 && act_ != DType::bf16)
    throw std::invalid_argument(std::string("cuda backend: activation dtype must be f32 or bf16, got ") + dtype_name(act_));
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    const std::string why = err != cudaSuccess ? std::string(cudaGetErrorString(err)) : "the CUDA runtime sees 0 devices";
    cudaGetLastError();
    throw std::runtime_error("no CUDA device: " + why + " (use --device cpu to train on the CPU)");
  }
  if (device < 0 || device >= count)
    throw std::invalid_argument("cuda device " + std::to_string(device) + " does not exist (this machine has " +
                                std::to_string(count) + ")");
  VS_CUDA_CHECK(cudaSetDevice(device_), "select cuda:" + std::to_string(device_));
  props_ = std::make_unique<cudaDeviceProp>();
  VS_CUDA_CHECK(cudaGetDeviceProperties(props_.get(), device_), "query cuda:" + std::to_string(device_));
  if (props_->major < 8)
    throw std::runtime_error("GPU too old: cuda:" + std::to_string(device_) + " " + props_->name + " is sm_" +
                             std::to_string(props_->major) + std::to_string(props_->minor) +
                             "; the CUDA backend needs sm_80 (Ampere) or newer for bf16 tensor cores");
  sm_count_ = props_->multiProcessorCount;
  VS_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem_optin_, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_),
                std::string("query shared memory limit"));
  name_ = "cuda:" + std::to_string(device_) + " " + props_->name + " (sm_" + std::to_string(props_->major) +
          std::to_string(props_->minor) + ", " + (act_ == DType::bf16 ? "bf16" : (allow_tf32_ ? "f32+tf32" : "f32")) +
          ")";

  stream_ = std::make_unique<cuda::Stream>();
  ordering_events_ = std::make_unique<cuda::OrderingEventPool>();
  workspace_ = allocate(kWorkspaceBytes, "cuBLASLt workspace");
  scratch_ = allocate(kInitialScratchBytes, "reduction scratch");
  hyper_ = allocate(sizeof(cuda::AdamWDeviceHyper), "AdamW hyper-parameters");
  gemm_ = std::make_unique<cuda::LtGemm>(allow_tf32_, workspace_.get(), workspace_.bytes());
  for (int i = 0; i < kGraphSlots; ++i) graphs_.push_back(std::make_unique<cuda::Graph>());
  cuda::attention_init(cuda::AttentionDevice{max_smem_optin_});
}

CudaBackend::~CudaBackend() {
  if (capturing_) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream_->get(), &g);
    if (g) cudaGraphDestroy(g);
  }
  if (stream_) cudaStreamSynchronize(stream_->get());  // buffers below are freed after pending work
}

const cudaDeviceProp& CudaBackend::properties() const { return *props_; }
cudaStream_t CudaBackend::compute_stream() const { return stream_->get(); }
bool CudaBackend::has_graph(int slot) const { return graph_slot(slot, "has_graph").ready(); }
bool CudaBackend::any_graph() const {
  return std::any_of(graphs_.begin(), graphs_.end(), [](const auto& g) { return g->ready(); });
}
cuda::Graph& CudaBackend::graph_slot(int slot, const char* op) const {
  if (slot < 0 || slot >= kGraphSlots)
    throw std::invalid_argument(std::string(op) + ": graph slot " + std::to_string(slot) + " is outside [0, " +
                                std::to_string(kGraphSlots) + ")");
  return *graphs_[static_cast<std::size_t>(slot)];
}

void CudaBackend::require_not_capturing(const char* op, const char* why) const {
  if (capturing_)
    throw std::logic_error(std::string(op) + " is not allowed while a CUDA graph is being captured (" + why + ")");
}

// ---- memory -----------------------------------------------------------------------

Buffer CudaBackend::allocate(std::size_t bytes, const std::string& what) {
  require_not_capturing("allocate");
  if (bytes == 0) return Buffer();
  VS_CUDA_CHECK(cudaSetDevice(device_), "select cuda:" + std::to_string(device_));
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw std::runtime_error("cuda:" + std::to_string(device_) + " out of memory allocating " + what + ": asked " +
                             mib(bytes) + " (" + std::to_string(bytes) + " bytes), the card has " + mib(free_b) +
                             " free of " + mib(total_b) + "; vitscale already holds " + mib(in_use_->load()) +
                             " (lower the micro-batch or use bf16)");
  }
  VS_CUDA_CHECK(err, "cudaMalloc for " + what + " (" + std::to_string(bytes) + " bytes)");
  in_use_->fetch_add(bytes);
  auto counter = in_use_;
  return Buffer(p, bytes, [counter, bytes](void* q) {
    cudaFree(q);
    counter->fetch_sub(bytes);
  });
}

Buffer CudaBackend::allocate_host(std::size_t bytes) {
  require_not_capturing("allocate_host");
  if (bytes == 0) return Buffer();
  void* p = nullptr;
  // Portable: usable as pinned memory whatever device the loader thread has current.
  VS_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocPortable),
                "pinned host allocation of " + std::to_string(bytes) + " bytes");
  return Buffer(p, bytes, [](void* q) { cudaFreeHost(q); });
}

void CudaBackend::copy_to_device(void* dst, const void* src, std::size_t bytes) {
  // A captured host-to-device copy re-reads `src` at every replay, long after this call returned.
  require_not_capturing("copy_to_device", "the graph would re-read this host memory at every replay");
  if (bytes == 0) return;
  VS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_->get()),
                "copy_to_device (" + std::to_string(bytes) + " bytes)");
}

HostReadFence CudaBackend::host_reads_done() {
  require_not_capturing("host_reads_done");
  // Shared: std::function needs a copyable callable. The lease returns the
  // event to the pool when the fence is done with it (after its wait).
  auto event = std::make_shared<cuda::OrderingEventPool::Lease>(ordering_events_->acquire());
  VS_CUDA_CHECK(cudaEventRecord(event->get(), stream_->get()), std::string("host_reads_done (record event)"));
  // Waited on from a loader worker thread: make this device current there
  // first, or the runtime would open a context on device 0 for that thread
  // (on every rank of a node).
  return HostReadFence([event, device = device_] {
    VS_CUDA_CHECK(cudaSetDevice(device), "host read fence (set device " + std::to_string(device) + ")");
    VS_CUDA_CHECK(cudaEventSynchronize(event->get()),
                  std::string("host read fence (an earlier copy or kernel may have failed)"));
  });
}

void CudaBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  require_not_capturing("copy_to_host");
  if (bytes == 0) return;
  VS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_->get()),
                "copy_to_host (" + std::to_string(bytes) + " bytes)");
  VS_CUDA_CHECK(cudaStreamSynchronize(stream_->get()),
                "copy_to_host (" + std::to_string(bytes) + " bytes; an earlier kernel may have failed)");
}

void CudaBackend::copy_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  VS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_->get()),
                "copy_device (" + std::to_string(bytes) + " bytes)");
}

void CudaBackend::fill_zero(TensorView t) {
  if (t.empty() || t.bytes() == 0) return;
  VS_CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.bytes(), stream_->get()), "fill_zero " + t.describe());
}

void CudaBackend::synchronize() {
  require_not_capturing("synchronize");
  VS_CUDA_CHECK(cudaStreamSynchronize(stream_->get()), std::string("synchronize (an earlier kernel may have failed)"));
}

void CudaBackend::cast(TensorView dst, TensorView src) {
  expect_float_act("cast", "dst", dst);
  expect_float_act("cast", "src", src);
  expect_numel("cast", "dst", dst, src.numel());
  cuda::cast(stream_->get(), dst.dtype, dst.data, src.dtype, src.data, src.numel());
}

float* CudaBackend::scratch(std::size_t bytes, const char* op) {
  if (bytes <= scratch_.bytes()) return scratch_.as<float>();
  if (capturing_)
    throw std::logic_error(std::string(op) + " needs " + std::to_string(bytes) + " bytes of scratch, the backend has " +
                           std::to_string(scratch_.bytes()) +
                           "; run one step eagerly (same shapes) before capturing a CUDA graph");
  synchronize();  // queued kernels may still use the old scratch
  const std::size_t grown = std::max(bytes, scratch_.bytes() * 2);
  // Captured graphs hold the old address: keep that buffer alive for them.
  if (any_graph()) retired_scratch_.push_back(std::move(scratch_));
  scratch_ = Buffer();
  scratch_ = allocate(grown, "reduction scratch");
  return scratch_.as<float>();
}

// ---- embedding ----------------------------------------------------------------------

void CudaBackend::image_to_patches(TensorView patches, TensorView images, const ImageNorm& norm, int patch,
                                   int image_size) {
  const char* op = "image_to_patches";
  expect_dtype(op, "images", images, DType::u8);
  expect_float_act(op, "patches", patches);
  if (images.rank != 4 || images.dim(2) != images.dim(3))
    throw std::invalid_argument(std::string(op) + ": images is " + images.describe() + ", expected (B, C, S, S)");
  if (patch <= 0 || image_size <= 0 || image_size % patch != 0)
    throw std::invalid_argument(std::string(op) + ": image size " + std::to_string(image_size) +
                                " is not a multiple of patch " + std::to_string(patch));
  const int B = static_cast<int>(images.dim(0)), C = static_cast<int>(images.dim(1)), S = static_cast<int>(images.dim(2));
  if (C != norm.channels)
    throw std::invalid_argument(std::string(op) + ": images have " + std::to_string(C) + " channels, the normalisation " +
                                std::to_string(norm.channels));
  const int gp = image_size / patch;
  expect_shape(op, "patches", patches, {B, static_cast<long long>(gp) * gp, static_cast<long long>(C) * patch * patch});
  cuda::image_to_patches(stream_->get(), patches.dtype, patches.data, images.as<std::uint8_t>(), B, C, S, image_size,
                         patch, norm.mean, norm.std);
}

void CudaBackend::embed_tokens(TensorView tokens, TensorView patch_emb, TensorView cls_token, TensorView pos_embed) {
  const char* op = "embed_tokens";
  expect_float_act(op, "tokens", tokens);
  const DType dt = tokens.dtype;
  if (tokens.rank != 3) throw std::invalid_argument(std::string(op) + ": tokens is " + tokens.describe() + ", expected (B, T, D)");
  const long long B = tokens.dim(0), T = tokens.dim(1), D = tokens.dim(2);
  const long long np = T - (cls_token.empty() ? 0 : 1);
  expect_shape(op, "patch_emb", patch_emb, {B, np, D});
  if (!cls_token.empty()) expect_numel(op, "cls_token", cls_token, D);
  expect_numel(op, "pos_embed", pos_embed, T * D);
  for (auto [n, t] : {std::pair{"patch_emb", &patch_emb}, {"cls_token", &cls_token}, {"pos_embed", &pos_embed}})
    expect_same_dtype(op, n, *t, dt);
  cuda::embed_tokens_forward(stream_->get(), dt, tokens.data, patch_emb.data, cls_token.empty() ? nullptr : cls_token.data,
                             pos_embed.data, static_cast<int>(B), static_cast<int>(T), static_cast<int>(D));
}

void CudaBackend::embed_tokens_backward(TensorView d_patch_emb, TensorView d_cls_token, TensorView d_pos_embed,
                                        TensorView d_tokens) {
  const char* op = "embed_tokens_backward";
  expect_float_act(op, "d_tokens", d_tokens);
  if (d_tokens.rank != 3)
    throw std::invalid_argument(std::string(op) + ": d_tokens is " + d_tokens.describe() + ", expected (B, T, D)");
  const long long B = d_tokens.dim(0), T = d_tokens.dim(1), D = d_tokens.dim(2);
  const bool has_cls = !d_cls_token.empty();
  const long long np = T - (has_cls ? 1 : 0);
  if (!d_patch_emb.empty()) {
    expect_shape(op, "d_patch_emb", d_patch_emb, {B, np, D});
    expect_same_dtype(op, "d_patch_emb", d_patch_emb, d_tokens.dtype);
  }
  if (has_cls) {
    expect_numel(op, "d_cls_token", d_cls_token, D);
    expect_dtype(op, "d_cls_token", d_cls_token, DType::f32);
  }
  if (!d_pos_embed.empty()) {
    expect_numel(op, "d_pos_embed", d_pos_embed, T * D);
    expect_dtype(op, "d_pos_embed", d_pos_embed, DType::f32);
  }
  cuda::embed_tokens_backward(stream_->get(), d_tokens.dtype, d_patch_emb.empty() ? nullptr : d_patch_emb.data,
                              has_cls ? static_cast<float*>(d_cls_token.data) : nullptr,
                              d_pos_embed.empty() ? nullptr : static_cast<float*>(d_pos_embed.data), d_tokens.data,
                              static_cast<int>(B), static_cast<int>(T), static_cast<int>(D), has_cls);
}

// ---- linear layers --------------------------------------------------------------------

void CudaBackend::linear(TensorView out, TensorView in, TensorView weight, TensorView bias) {
  const char* op = "linear";
  expect_float_act(op, "in", in);
  const DType dt = in.dtype;
  const auto [M, K] = rows_of(op, "in", in);
  expect_shape(op, "weight", weight, {-1, K});
  const int N = static_cast<int>(weight.dim(0));
  expect_numel(op, "out", out, M * N);
  if (out.dim(-1) != N) throw std::invalid_argument(std::string(op) + ": out is " + out.describe() + ", expected last dim " + std::to_string(N));
  expect_same_dtype(op, "out", out, dt);
  expect_same_dtype(op, "weight", weight, dt);
  if (!bias.empty()) {
    expect_numel(op, "bias", bias, N);
    expect_same_dtype(op, "bias", bias, dt);
  }
  const void* b = bias.empty() ? nullptr : bias.data;
  if (!gemm_->linear(stream_->get(), dt, out.data, in.data, weight.data, b, static_cast<int>(M), N, K) && b)
    cuda::bias_add_rows(stream_->get(), dt, out.data, b, M, N);
}

void CudaBackend::linear_gelu(TensorView pre, TensorView out, TensorView in, TensorView weight, TensorView bias) {
  linear(pre, in, weight, bias);
  expect_numel("linear_gelu", "out", out, pre.numel());
  expect_same_dtype("linear_gelu", "out", out, pre.dtype);
  cuda::gelu_forward(stream_->get(), pre.dtype, out.data, pre.data, pre.numel());
}

void CudaBackend::linear_backward(TensorView d_in, TensorView d_weight, TensorView d_bias, TensorView d_out,
                                  TensorView in, TensorView weight) {
  const char* op = "linear_backward";
  expect_float_act(op, "d_out", d_out);
  const DType dt = d_out.dtype;
  const auto [M, N] = rows_of(op, "d_out", d_out);
  const auto [Min, K] = rows_of(op, "in", in);
  if (Min != M)
    throw std::invalid_argument(std::string(op) + ": in is " + in.describe() + " but d_out is " + d_out.describe());
  expect_same_dtype(op, "in", in, dt);
  expect_shape(op, "weight", weight, {N, K});
  expect_same_dtype(op, "weight", weight, dt);
  if (!d_in.empty()) {
    expect_numel(op, "d_in", d_in, M * K);
    expect_same_dtype(op, "d_in", d_in, dt);
    gemm_->linear_dinput(stream_->get(), dt, d_in.data, d_out.data, weight.data, static_cast<int>(M), N, K);
  }
  if (!d_weight.empty()) {
    expect_numel(op, "d_weight", d_weight, static_cast<long long>(N) * K);
    expect_dtype(op, "d_weight", d_weight, DType::f32);
    gemm_->linear_dweight(stream_->get(), dt, static_cast<float*>(d_weight.data), d_out.data, in.data,
                          static_cast<int>(M), N, K);
  }
  if (!d_bias.empty()) {
    expect_numel(op, "d_bias", d_bias, N);
    expect_dtype(op, "d_bias", d_bias, DType::f32);
    const std::size_t need = cuda::column_sum_scratch_bytes(dt, M, N, sm_count_);
    float* s = scratch(need, op);  // before reading scratch_.bytes(): it may grow
    cuda::column_sum_accumulate(stream_->get(), dt, static_cast<float*>(d_bias.data), d_out.data, M, N, s,
                                scratch_.bytes(), sm_count_);
  }
}

void CudaBackend::gelu_backward(TensorView d_pre, TensorView d_out, TensorView pre) {
  const char* op = "gelu_backward";
  expect_float_act(op, "pre", pre);
  expect_numel(op, "d_out", d_out, pre.numel());
  expect_numel(op, "d_pre", d_pre, pre.numel());
  expect_same_dtype(op, "d_out", d_out, pre.dtype);
  expect_same_dtype(op, "d_pre", d_pre, pre.dtype);
  cuda::gelu_backward(stream_->get(), pre.dtype, d_pre.data, d_out.data, pre.data, pre.numel());
}

// ---- layernorm ---------------------------------------------------------------------------

namespace {
struct LnShape {
  long long R;
  int D;
};
LnShape check_layernorm(const char* op, TensorView out, TensorView mean, TensorView rstd, TensorView in,
                        TensorView gamma, TensorView beta) {
  expect_float_act(op, "in", in);
  const auto [R, D] = rows_of(op, "in", in);
  expect_numel(op, "out", out, R * D);
  expect_same_dtype(op, "out", out, in.dtype);
  expect_numel(op, "mean", mean, R);
  expect_numel(op, "rstd", rstd, R);
  expect_dtype(op, "mean", mean, DType::f32);
  expect_dtype(op, "rstd", rstd, DType::f32);
  expect_numel(op, "gamma", gamma, D);
  expect_numel(op, "beta", beta, D);
  expect_same_dtype(op, "gamma", gamma, in.dtype);
  expect_same_dtype(op, "beta", beta, in.dtype);
  if (R > INT32_MAX) throw std::invalid_argument(std::string(op) + ": too many rows in " + in.describe());
  return {R, D};
}
}  // namespace

void CudaBackend::layernorm(TensorView out, TensorView mean, TensorView rstd, TensorView in, TensorView gamma,
                            TensorView beta) {
  const auto [R, D] = check_layernorm("layernorm", out, mean, rstd, in, gamma, beta);
  cuda::layernorm_forward(stream_->get(), in.dtype, out.data, static_cast<float*>(mean.data),
                          static_cast<float*>(rstd.data), nullptr, in.data, nullptr, gamma.data, beta.data,
                          static_cast<int>(R), D, kLayerNormEps);
}

void CudaBackend::add_layernorm(TensorView sum, TensorView out, TensorView mean, TensorView rstd, TensorView a,
                                TensorView b, TensorView gamma, TensorView beta) {
  const char* op = "add_layernorm";
  const auto [R, D] = check_layernorm(op, out, mean, rstd, a, gamma, beta);
  expect_numel(op, "b", b, R * D);
  expect_numel(op, "sum", sum, R * D);
  expect_same_dtype(op, "b", b, a.dtype);
  expect_same_dtype(op, "sum", sum, a.dtype);
  cuda::layernorm_forward(stream_->get(), a.dtype, out.data, static_cast<float*>(mean.data),
                          static_cast<float*>(rstd.data), sum.data, a.data, b.data, gamma.data, beta.data,
                          static_cast<int>(R), D, kLayerNormEps);
}

void CudaBackend::layernorm_backward(TensorView d_in, TensorView d_gamma, TensorView d_beta, TensorView d_out,
                                     TensorView in, TensorView mean, TensorView rstd, TensorView gamma) {
  const char* op = "layernorm_backward";
  expect_float_act(op, "in", in);
  const auto [R, D] = rows_of(op, "in", in);
  for (auto [n, t] : {std::pair{"d_in", &d_in}, {"d_out", &d_out}}) {
    expect_numel(op, n, *t, R * D);
    expect_same_dtype(op, n, *t, in.dtype);
  }
  expect_numel(op, "mean", mean, R);
  expect_numel(op, "rstd", rstd, R);
  expect_dtype(op, "mean", mean, DType::f32);
  expect_dtype(op, "rstd", rstd, DType::f32);
  expect_numel(op, "gamma", gamma, D);
  expect_same_dtype(op, "gamma", gamma, in.dtype);
  for (auto [n, t] : {std::pair{"d_gamma", &d_gamma}, {"d_beta", &d_beta}}) {
    expect_present(op, n, *t);
    expect_numel(op, n, *t, D);
    expect_dtype(op, n, *t, DType::f32);
  }
  const std::size_t need = cuda::layernorm_backward_scratch_bytes(static_cast<int>(R), D, sm_count_);
  float* s = scratch(need, op);
  cuda::layernorm_backward(stream_->get(), in.dtype, d_in.data, static_cast<float*>(d_gamma.data),
                           static_cast<float*>(d_beta.data), d_out.data, in.data, static_cast<const float*>(mean.data),
                           static_cast<const float*>(rstd.data), gamma.data, static_cast<int>(R), D, s,
                           scratch_.bytes(), sm_count_);
}

void CudaBackend::add(TensorView out, TensorView a, TensorView b) {
  expect_float_act("add", "a", a);
  expect_numel("add", "b", b, a.numel());
  expect_numel("add", "out", out, a.numel());
  expect_same_dtype("add", "b", b, a.dtype);
  expect_same_dtype("add", "out", out, a.dtype);
  cuda::add(stream_->get(), a.dtype, out.data, a.data, b.data, a.numel());
}

// ---- attention ---------------------------------------------------------------------------

namespace {
struct AttnShape {
  int B, T, H, hd;
};
AttnShape check_attention(const char* op, TensorView qkv, TensorView out, TensorView lse, int heads) {
  expect_float_act(op, "qkv", qkv);
  if (qkv.rank != 3 || qkv.dim(2) % 3 != 0)
    throw std::invalid_argument(std::string(op) + ": qkv is " + qkv.describe() + ", expected (B, T, 3D)");
  const long long B = qkv.dim(0), T = qkv.dim(1), D = qkv.dim(2) / 3;
  if (heads <= 0 || D % heads != 0)
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(heads) + " heads do not divide D=" + std::to_string(D));
  expect_shape(op, "out", out, {B, T, D});
  expect_same_dtype(op, "out", out, qkv.dtype);
  expect_shape(op, "lse", lse, {B, heads, T});
  expect_dtype(op, "lse", lse, DType::f32);
  return {static_cast<int>(B), static_cast<int>(T), heads, static_cast<int>(D / heads)};
}
}  // namespace

void CudaBackend::attention(TensorView out, TensorView lse, TensorView qkv, int heads) {
  const AttnShape s = check_attention("attention", qkv, out, lse, heads);
  cuda::attention_forward(stream_->get(), qkv.dtype, out.data, static_cast<float*>(lse.data), qkv.data, s.B, s.T, s.H,
                          s.hd, cuda::AttentionDevice{max_smem_optin_});
}

void CudaBackend::attention_backward(TensorView d_qkv, TensorView d_out, TensorView qkv, TensorView out,
                                     TensorView lse, int heads) {
  const char* op = "attention_backward";
  const AttnShape s = check_attention(op, qkv, out, lse, heads);
  expect_shape(op, "d_qkv", d_qkv, {qkv.dim(0), qkv.dim(1), qkv.dim(2)});
  expect_same_dtype(op, "d_qkv", d_qkv, qkv.dtype);
  expect_shape(op, "d_out", d_out, {out.dim(0), out.dim(1), out.dim(2)});
  expect_same_dtype(op, "d_out", d_out, qkv.dtype);
  const std::size_t need = cuda::attention_backward_scratch_bytes(s.B, s.T, s.H);
  float* sc = scratch(need, op);
  cuda::attention_backward(stream_->get(), qkv.dtype, d_qkv.data, d_out.data, qkv.data, out.data,
                           static_cast<const float*>(lse.data), s.B, s.T, s.H, s.hd, sc, scratch_.bytes(),
                           cuda::AttentionDevice{max_smem_optin_});
}

// ---- pooling and loss -------------------------------------------------------------------

void CudaBackend::pool(TensorView pooled, TensorView x, Pooling mode) {
  expect_float_act("pool", "x", x);
  if (x.rank != 3) throw std::invalid_argument("pool: x is " + x.describe() + ", expected (B, T, D)");
  expect_shape("pool", "pooled", pooled, {x.dim(0), x.dim(2)});
  expect_same_dtype("pool", "pooled", pooled, x.dtype);
  cuda::pool_forward(stream_->get(), x.dtype, pooled.data, x.data, static_cast<int>(x.dim(0)),
                     static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)), mode == Pooling::mean);
}

void CudaBackend::pool_backward(TensorView d_x, TensorView d_pooled, Pooling mode) {
  expect_float_act("pool_backward", "d_x", d_x);
  if (d_x.rank != 3) throw std::invalid_argument("pool_backward: d_x is " + d_x.describe() + ", expected (B, T, D)");
  expect_shape("pool_backward", "d_pooled", d_pooled, {d_x.dim(0), d_x.dim(2)});
  expect_same_dtype("pool_backward", "d_pooled", d_pooled, d_x.dtype);
  cuda::pool_backward(stream_->get(), d_x.dtype, d_x.data, d_pooled.data, static_cast<int>(d_x.dim(0)),
                      static_cast<int>(d_x.dim(1)), static_cast<int>(d_x.dim(2)), mode == Pooling::mean);
}

void CudaBackend::cross_entropy(TensorView losses, TensorView d_logits, TensorView logits, TensorView targets,
                                float grad_scale) {
  const char* op = "cross_entropy";
  expect_float_act(op, "logits", logits);
  if (logits.rank != 2) throw std::invalid_argument(std::string(op) + ": logits is " + logits.describe() + ", expected (B, K)");
  const long long B = logits.dim(0), K = logits.dim(1);
  expect_shape(op, "targets", targets, {B, K});
  expect_dtype(op, "targets", targets, DType::f32);
  expect_shape(op, "d_logits", d_logits, {B, K});
  expect_same_dtype(op, "d_logits", d_logits, logits.dtype);
  expect_numel(op, "losses", losses, B);
  expect_dtype(op, "losses", losses, DType::f32);
  cuda::cross_entropy(stream_->get(), logits.dtype, static_cast<float*>(losses.data), d_logits.data, logits.data,
                      static_cast<const float*>(targets.data), static_cast<int>(B), static_cast<int>(K), grad_scale);
}

// ---- optimizer ------------------------------------------------------------------------------

void CudaBackend::grad_norm_squared(TensorView out, TensorView grads) {
  expect_dtype("grad_norm_squared", "grads", grads, DType::f32);
  expect_dtype("grad_norm_squared", "out", out, DType::f32);
  expect_numel("grad_norm_squared", "out", out, 1);
  float* s = scratch(cuda::sum_squares_scratch_bytes(), "grad_norm_squared");
  cuda::sum_squares(stream_->get(), static_cast<float*>(out.data), static_cast<const float*>(grads.data),
                    grads.numel(), s, scratch_.bytes());
}

namespace {
cuda::AdamWDeviceHyper to_device(const AdamWHyper& h) {
  if (h.step < 1) throw std::invalid_argument("adamw: step must be >= 1 (1-based), got " + std::to_string(h.step));
  cuda::AdamWDeviceHyper d;
  d.lr = h.lr;
  d.beta1 = h.beta1;
  d.beta2 = h.beta2;
  d.eps = h.eps;
  d.weight_decay = h.weight_decay;
  d.bias_correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), h.step));
  d.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(h.beta2), h.step)));
  d.max_grad_norm = h.max_grad_norm;
  return d;
}
}  // namespace

void CudaBackend::set_adamw_hyper(const AdamWHyper& h) {
  require_not_capturing("set_adamw_hyper");
  cuda::adamw_write_hyper(stream_->get(), hyper_.as<cuda::AdamWDeviceHyper>(), to_device(h));
}

// The device copy of the segment table, uploaded when the table changes
// (compared by value) — in practice once per run, before any capture.
const void* CudaBackend::segment_table(std::span<const ParamSegment> segments, std::int64_t n, int& count) {
  const bool same = cached_segments_n_ == n && cached_segments_.size() == segments.size() &&
                    std::equal(segments.begin(), segments.end(), cached_segments_.begin(),
                               [](const ParamSegment& a, const ParamSegment& b) {
                                 return a.offset == b.offset && a.numel == b.numel && a.decay == b.decay;
                               });
  if (!same) {
    if (capturing_ || any_graph())
      throw std::logic_error("adamw: the parameter segment table changed after/while capturing a CUDA graph");
    std::vector<cuda::DeviceSegment> dev;
    dev.reserve(segments.size());
    for (const ParamSegment& s : segments) {
      if (s.offset < 0 || s.numel < 0 || s.offset + s.numel > n)
        throw std::invalid_argument("adamw: segment [" + std::to_string(s.offset) + ", +" + std::to_string(s.numel) +
                                    ") is outside the " + std::to_string(n) + "-element buffer");
      if (s.numel > 0) dev.push_back(cuda::DeviceSegment{s.offset, s.numel, s.decay ? 1 : 0, 0});
    }
    std::sort(dev.begin(), dev.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
    for (std::size_t i = 1; i < dev.size(); ++i)
      if (dev[i - 1].offset + dev[i - 1].numel > dev[i].offset)
        throw std::invalid_argument("adamw: parameter segments overlap at offset " + std::to_string(dev[i].offset));
    const std::size_t bytes = std::max<std::size_t>(dev.size(), 1) * sizeof(cuda::DeviceSegment);
    if (segments_.bytes() < bytes) {
      synchronize();
      segments_ = Buffer();
      segments_ = allocate(bytes, "AdamW segment table");
    }
    if (!dev.empty()) {
      VS_CUDA_CHECK(cudaMemcpyAsync(segments_.get(), dev.data(), dev.size() * sizeof(cuda::DeviceSegment),
                                    cudaMemcpyHostToDevice, stream_->get()),
                    std::string("adamw: upload segment table"));
      synchronize();  // `dev` dies at the end of this scope
    }
    cached_segments_.assign(segments.begin(), segments.end());
    cached_segments_n_ = n;
    segment_count_ = static_cast<int>(dev.size());
  }
  count = segment_count_;
  return segments_.get();
}

void CudaBackend::adamw(TensorView params, TensorView grads, TensorView m, TensorView v,
                        std::span<const ParamSegment> segments, const AdamWHyper& hyper, TensorView grad_norm_sq) {
  const char* op = "adamw";
  const long long n = params.numel();
  for (auto [name, t] : {std::pair{"params", &params}, {"grads", &grads}, {"m", &m}, {"v", &v}}) {
    expect_dtype(op, name, *t, DType::f32);
    expect_numel(op, name, *t, n);
  }
  if (hyper.max_grad_norm > 0.f) {
    if (grad_norm_sq.empty())
      throw std::invalid_argument("adamw: max_grad_norm > 0 but no grad_norm_sq was given");
    expect_dtype(op, "grad_norm_sq", grad_norm_sq, DType::f32);
    expect_numel(op, "grad_norm_sq", grad_norm_sq, 1);
  }
  int count = 0;
  const auto* table = static_cast<const cuda::DeviceSegment*>(segment_table(segments, n, count));
  // Outside a capture the scalars are written here; a captured graph reads
  // whatever set_adamw_hyper() wrote before its replay.
  if (!capturing_) cuda::adamw_write_hyper(stream_->get(), hyper_.as<cuda::AdamWDeviceHyper>(), to_device(hyper));
  cuda::adamw_update(stream_->get(), static_cast<float*>(params.data), static_cast<const float*>(grads.data),
                     static_cast<float*>(m.data), static_cast<float*>(v.data), n, table, count,
                     hyper_.as<cuda::AdamWDeviceHyper>(),
                     grad_norm_sq.empty() ? nullptr : static_cast<const float*>(grad_norm_sq.data));
}

void CudaBackend::weight_ema(TensorView ema, TensorView params, float decay) {
  const char* op = "weight_ema";
  const long long n = ema.numel();
  expect_dtype(op, "ema", ema, DType::f32);
  expect_dtype(op, "params", params, DType::f32);
  expect_numel(op, "params", params, n);
  if (!(decay >= 0.f && decay <= 1.f))
    throw std::invalid_argument("weight_ema: decay " + std::to_string(decay) + " is outside [0, 1]");
  cuda::weight_ema_update(stream_->get(), static_cast<float*>(ema.data), static_cast<const float*>(params.data), n,
                          decay);
}

// ---- graphs -----------------------------------------------------------------------------------

void CudaBackend::begin_capture() {
  require_not_capturing("begin_capture");
  // Thread-local: other threads (the data loader) may keep calling CUDA.
  VS_CUDA_CHECK(cudaStreamBeginCapture(stream_->get(), cudaStreamCaptureModeThreadLocal), std::string("begin_capture"));
  capturing_ = true;
}

void CudaBackend::end_capture(int slot) {
  if (!capturing_) throw std::logic_error("end_capture without begin_capture");
  cuda::Graph& target = graph_slot(slot, "end_capture");
  cudaGraph_t g = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream_->get(), &g);
  capturing_ = false;
  if (err != cudaSuccess) {
    if (g) cudaGraphDestroy(g);
    VS_CUDA_CHECK(err, std::string("end_capture (an op in the captured region was not capturable: a host sync, "
                                   "an allocation, or work on another stream without an event)"));
  }
  target.adopt(g);
}

void CudaBackend::replay(int slot) {
  require_not_capturing("replay");
  const cuda::Graph& g = graph_slot(slot, "replay");
  if (!g.ready()) throw std::logic_error("replay: no CUDA graph has been captured in slot " + std::to_string(slot));
  g.launch(stream_->get());
}

}  // namespace vitscale

#endif  // VITSCALE_HAVE_CUDA
