// vit_model.h — the Vision Transformer: memory plan, forward, explicit backward.
//
// The model owns four arenas (parameters, gradients, the compute copy of the
// weights when it differs from the fp32 masters, activations) and calls the
// backend op by op. There is no autograd: backward() walks the blocks in reverse
// and, as each group of parameters' gradients becomes final, tells a listener
// (the data-parallel reducer) how far down the flat gradient buffer is final.
//
// One step, at micro-batch B, T tokens, width D (shapes in the Activations table):
//   images (B,C,S,S) u8 → patches (B,Np,C·P·P) → patch_emb (B,Np,D) → x0 (B,T,D)
//   block l: ln1 = LN(x_l); qkv; attn; x_l + proj(attn) = mid_l; ln2 = LN(mid_l);
//            fc1 → GELU → fc2; x_{l+1} = mid_l + fc2 (fused into the next LN)
//   pooled (B,D) = x_L[:,0] or mean; lnf = LN(pooled); logits (B,K); CE loss.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/param_table.h"
#include "runtime/vit_config.h"

namespace vitscale {

// Told by backward() that every gradient at flat offset >= `offset` is final.
// The flat order is the forward order, and backward finishes it back to front.
class GradReadyListener {
 public:
  virtual ~GradReadyListener() = default;
  virtual void grads_ready_from(std::int64_t offset) = 0;
  // Where backward writes (+=) parameter `param`'s gradient, (numel) f32; an
  // empty view: the model's own gradient buffer. ZeRO-2/3 hand out a slot of
  // their bucket-sized window (parallel/grad_window.h); backward asks just
  // before it first writes the parameter in this pass.
  virtual TensorView gradient_of(int param) {
    (void)param;
    return {};
  }
};

// Where forward and backward read a weight group's compute weights when the
// model does not hold them all (ZeRO-3, parallel/zero3_params.h). Groups are
// ParamTable::weight_groups(); every pass acquires and releases them in a fixed
// order (forward 0..G-1, backward G-1..0), the same on every rank, so a
// provider may gather collectively and prefetch the next group.
class ParamProvider {
 public:
  enum class Pass { forward, backward };
  virtual ~ParamProvider() = default;
  // (group count) elements in the compute dtype, valid until release(group).
  virtual TensorView acquire(int group, Pass pass) = 0;
  virtual void release(int group) = 0;
  // The fp32 masters in table layout (n floats). Collective: every rank calls.
  virtual void read_full(std::span<float> host) = 0;
  virtual void write_full(std::span<const float> host) = 0;
};

// Resident weights that are still arriving: ZeRO-1/2 with overlap_comm issue
// the parameter all-gather group by group right after the optimizer step and
// let it run on into the next step (parallel/zero1.h). A pass waits for a
// group just before it first reads it (forward order: the embedding, blocks
// 0..L-1, the head); reading or writing the weights whole waits for them all.
// The implementation refreshes a group's compute copy once it has arrived
// (ViTModel::sync_compute_group).
class ParamArrival {
 public:
  virtual ~ParamArrival() = default;
  virtual void wait_group(int group) = 0;
  virtual void wait_all() = 0;
};

struct MemoryPlan {
  // This rank's bytes: the model's own arenas, plus what the data-parallel
  // engine holds for it (ZeRO's shards and working buffers).
  std::size_t params = 0, grads = 0, compute_params = 0, activations = 0, optimizer = 0;
  std::size_t ema = 0;                    // the weights' moving average and its swap space (train/weight_ema.h; 0: off)
  bool activation_checkpointing = false;  // activations: block inputs + one block's working set
  int zero_stage = 0, rank = 0, world = 1;  // whose bytes these are (set by the data-parallel engine)
  std::size_t total() const { return params + grads + compute_params + activations + optimizer + ema; }
  std::string format() const;  // a small table in MiB
};

struct BlockActivations {
  TensorView x;         // (B, T, D) block input (the residual stream)
  TensorView ln1;       // (B, T, D)
  TensorView ln1_mean;  // (B, T) f32
  TensorView ln1_rstd;  // (B, T) f32
  TensorView qkv;       // (B, T, 3D)
  TensorView attn;      // (B, T, D)
  TensorView attn_lse;  // (B, H, T) f32
  TensorView mid;       // (B, T, D) x + proj(attn)
  TensorView ln2;       // (B, T, D)
  TensorView ln2_mean;  // (B, T) f32
  TensorView ln2_rstd;  // (B, T) f32
  TensorView fc1_pre;   // (B, T, F) before GELU
  TensorView fc1_act;   // (B, T, F) after GELU
};

struct Activations {
  TensorView images;     // (B, C, S, S) u8, the batch as it came from the loader
  TensorView targets;    // (B, K) f32 soft targets
  TensorView patches;    // (B, Np, C·P·P)
  TensorView patch_emb;  // (B, Np, D)
  std::vector<BlockActivations> blocks;
  TensorView x_final;     // (B, T, D) output of the last block
  TensorView pooled;      // (B, D)
  TensorView lnf;         // (B, D)
  TensorView lnf_mean;    // (B) f32
  TensorView lnf_rstd;    // (B) f32
  TensorView logits;      // (B, K)
  TensorView losses;      // (B) f32
  TensorView logits_f32;  // (B, K) f32 copy of logits for the host (bf16 runs)
  // Scratch, reused by every block (not needed by backward):
  TensorView branch_out;  // (B, T, D) proj or fc2 output before the residual add
  // Backward scratch:
  TensorView d_logits;     // (B, K)
  TensorView d_lnf;        // (B, D)
  TensorView d_pooled;     // (B, D) (layernorm_backward accumulates into it: zeroed first)
  TensorView d_x;          // (B, T, D) the residual stream's gradient
  TensorView d_ln;         // (B, T, D)
  TensorView d_attn;       // (B, T, D)
  TensorView d_qkv;        // (B, T, 3D)
  TensorView d_fc1;        // (B, T, F)
  TensorView d_patch_emb;  // (B, Np, D)
};

struct ModelShape {
  int micro_batch = 64;       // B: the most images one forward takes
  int source_image_size = 0;  // S: the loader's image side (0: the model's image_size)
  // Keep only each block's input x (B, T, D); every other block activation
  // lives in one working set that all blocks share, and backward recomputes a
  // block's forward from its input just before going back through it. Same
  // ops on the same inputs: the gradients are the same bits.
  bool activation_checkpointing = false;
  // false: no full-size gradient arena; every backward takes its gradient
  // views from the listener (GradReadyListener::gradient_of), ZeRO-2/3.
  bool resident_gradients = true;
  // false: no full-size parameter arena; weights come from a ParamProvider
  // (set_param_provider before any pass or read/write), ZeRO-3.
  bool resident_params = true;
};

class ViTModel {
 public:
  ViTModel(const ViTConfig& config, Backend& backend, ModelShape shape, ImageNorm norm);

  const ViTConfig& config() const { return config_; }
  const ParamTable& table() const { return table_; }
  Backend& backend() { return backend_; }
  int micro_batch() const { return shape_.micro_batch; }
  int source_image_size() const { return shape_.source_image_size; }
  const ImageNorm& image_norm() const { return norm_; }
  const MemoryPlan& memory_plan() const { return plan_; }

  // (n) f32 master weights; empty when not resident. With a ParamArrival set
  // (ZeRO-1/2, overlap_comm) other ranks' parts may still be arriving: read
  // them through read_params, which waits.
  TensorView params() const { return params_; }
  // The same view once every part has arrived (waits for a ParamArrival).
  TensorView complete_params() const;
  TensorView grads() const { return grads_; }    // (n) f32; empty when not resident
  bool resident_params() const { return shape_.resident_params; }
  bool resident_gradients() const { return shape_.resident_gradients; }
  void set_param_provider(ParamProvider* provider) { provider_ = provider; }
  // Resident weights only; null: they are always complete.
  void set_param_arrival(ParamArrival* arrival) { arrival_ = arrival; }
  TensorView param(int index) const;             // one parameter of the table, timm shape flattened to rank ≤ 4
  TensorView grad(int index) const;

  // timm's initialisation, seeded: trunc_normal(0.02) for Linear weights and
  // pos_embed, normal(1e-6) for cls_token, zero Linear biases, LayerNorm 1/0,
  // PyTorch's Conv2d default for patch_embed (as timm leaves it).
  void init_parameters(std::uint64_t seed);
  // Host <-> device copies of the fp32 master weights (table layout, n floats).
  void read_params(std::span<float> host) const;
  void write_params(std::span<const float> host);
  // After the masters change (optimizer step, load), refresh the compute copy.
  void sync_compute_params();
  // The same for one weight group (ParamTable::weight_groups) whose masters changed.
  void sync_compute_group(int group);

  // images (batch, C, S, S) u8 and soft targets (batch, K) f32, host memory
  // (pinned on CUDA); 1 <= batch <= micro_batch.
  void upload_batch(const std::uint8_t* images, const float* targets, int batch);
  // Forward through the loss. grad_scale multiplies d_logits (1 / global batch
  // for training; anything for evaluation).
  void forward(float grad_scale);
  // Backward from the d_logits that forward() wrote; parameter gradients accumulate.
  void backward(GradReadyListener* listener = nullptr);
  void zero_grads();

  int batch() const { return batch_; }
  // Acquires and releases every weight group as a forward would, computing
  // nothing: a rank with no images in an evaluation batch keeps ZeRO-3's
  // collective gathers paired with the other ranks'.
  void forward_weights_only();

  // Copies the per-image losses / logits of the last forward to the host.
  std::vector<float> read_losses() const;  // (batch)
  std::vector<float> read_logits() const;  // (batch, K)

 private:
  Activations activations_for(int batch) const;  // views with the leading dim = batch
  // Block l's forward from a.blocks[l].x (stored) or, for l > 0 in the first
  // forward, from the previous block's mid + branch_out (x_l written on the way).
  void forward_block(const Activations& a, int l, bool from_stored_input, TensorView weights);
  // Group g's compute weights: a slice of the resident copy, or the provider's.
  TensorView acquire(int group, ParamProvider::Pass pass);
  void release(int group);
  void layout_activations(ArenaCarver& carver, int batch, Activations& a) const;

  ViTConfig config_;
  Backend& backend_;
  ModelShape shape_;
  ImageNorm norm_;
  ParamTable table_;
  MemoryPlan plan_;
  Arena params_arena_, grads_arena_, compute_arena_, activations_arena_;
  TensorView params_, grads_, compute_params_;
  std::vector<ParamTable::Range> groups_;
  ParamProvider* provider_ = nullptr;
  ParamArrival* arrival_ = nullptr;
  int batch_ = 0;
};

}  // namespace vitscale
