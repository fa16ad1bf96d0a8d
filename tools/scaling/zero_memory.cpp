#include "tools/scaling/zero_memory.h"

#include <algorithm>
#include <stdexcept>

#include "parallel/bucket_plan.h"
#include "parallel/grad_window.h"
#include "runtime/param_table.h"

namespace vitscale::scaling {

namespace {

// Counts bytes as runtime/arena.h's ArenaCarver does: every view starts on a 256-byte boundary.
class ByteCounter {
 public:
  void take(std::int64_t elements, int bytes) {
    used_ = (used_ + kAlign - 1) / kAlign * kAlign + static_cast<std::size_t>(elements) * bytes;
  }
  std::size_t used() const { return (used_ + kAlign - 1) / kAlign * kAlign; }

 private:
  static constexpr std::size_t kAlign = 256;
  std::size_t used_ = 0;
};

}  // namespace

std::size_t activation_bytes(const ViTConfig& c, int micro_batch, bool checkpointing, int a) {
  if (micro_batch < 1) throw std::invalid_argument("activation bytes: micro-batch must be >= 1");
  const std::int64_t B = micro_batch, T = c.tokens(), D = c.dim, F = c.mlp_dim, K = c.num_classes, H = c.heads,
                     Np = c.num_patches(), S = c.image_size;
  ByteCounter n;
  n.take(B * c.channels * S * S, 1);  // images, u8
  n.take(B * K, 4);                   // targets
  n.take(B * Np * c.patch_dim(), a);  // patches
  n.take(B * Np * D, a);              // patch embedding
  for (int l = 0; l < c.depth; ++l) {
    n.take(B * T * D, a);                        // the block's input, always kept
    if (checkpointing && l > 0) continue;        // the rest: one working set shared by all blocks
    n.take(B * T * D, a);                        // ln1
    n.take(B * T, 4), n.take(B * T, 4);          // ln1 mean, rstd
    n.take(B * T * 3 * D, a);                    // qkv
    n.take(B * T * D, a);                        // attention output
    n.take(B * H * T, 4);                        // attention log-sum-exp
    n.take(B * T * D, a);                        // mid
    n.take(B * T * D, a);                        // ln2
    n.take(B * T, 4), n.take(B * T, 4);          // ln2 mean, rstd
    n.take(B * T * F, a), n.take(B * T * F, a);  // fc1 before and after GELU
  }
  n.take(B * T * D, a);                                                   // x_final
  n.take(B * D, a), n.take(B * D, a);                                     // pooled, lnf
  n.take(B, 4), n.take(B, 4);                                             // lnf mean, rstd
  n.take(B * K, a);                                                       // logits
  n.take(B, 4);                                                           // losses
  n.take(B * K, 4);                                                       // logits, f32 copy
  n.take(B * T * D, a);                                                   // branch output scratch
  n.take(B * K, a), n.take(B * D, a), n.take(B * D, a);                   // d_logits, d_lnf, d_pooled
  n.take(B * T * D, a), n.take(B * T * D, a), n.take(B * T * D, a);       // d_x, d_ln, d_attn
  n.take(B * T * 3 * D, a), n.take(B * T * F, a), n.take(B * Np * D, a);  // d_qkv, d_fc1, d_patch_emb
  return n.used();
}

ZeroMemory zero_memory(const ViTConfig& cfg, const ZeroMemoryOptions& o) {
  if (o.stage < 0 || o.stage > 3)
    throw std::invalid_argument("memory: zero_optimization.stage " + std::to_string(o.stage) + " is not 0-3");
  if (o.world < 1) throw std::invalid_argument("memory: world size must be >= 1");
  if (o.accumulation < 1) throw std::invalid_argument("memory: gradient accumulation steps must be >= 1");
  const ParamTable table(cfg);
  const auto psi = static_cast<std::size_t>(table.total_numel());
  const std::size_t W = static_cast<std::size_t>(o.world);
  const MemoryBytes& b = o.bytes;
  auto shard = [&](std::size_t bytes) { return (bytes + W - 1) / W; };
  ZeroMemory m;
  m.params = psi * b.param;
  m.grads = psi * b.grad;
  m.optimizer = psi * (b.master + b.optimizer);
  if (o.stage >= 1) {
    m.optimizer = shard(m.optimizer);
    m.working = shard(psi * b.grad);  // the reduce-scatter's destination (at one rank: all of it)
  }
  if (o.stage >= 2) {
    // The full gradient buffer gives way to a window of bucket slots, unless
    // accumulation sums locally in it or overlap is off (every bucket waits).
    // The window is the trainer's own plan (parallel/grad_window.h) over its
    // buckets: reduce_bucket_size counts elements (bucket_bytes / G here),
    // which the trainer's plan_buckets takes as f32 bytes.
    const bool accumulates = o.accumulation > 1 && !o.reduce_every_micro_step;
    const std::size_t elements = std::max<std::size_t>(1, o.bucket_bytes / static_cast<std::size_t>(b.grad));
    const GradWindowPlan w = plan_grad_window(plan_buckets(table, elements * sizeof(float)), table, o.overlap);
    m.window_buckets = w.bucket_count();
    m.grads = accumulates ? psi * b.grad : static_cast<std::size_t>(w.capacity) * b.grad;
  }
  if (o.stage == 3) {
    m.params = shard(m.params);
    // Two buffers of the largest group gathered (the one computing, the one
    // prefetched), and the persistent small groups kept gathered.
    std::size_t largest = 0, persistent = 0;
    for (const auto& g : table.weight_groups()) {
      const auto n = static_cast<std::size_t>(g.count);
      if (g.count <= o.persistence_elements)
        persistent += n;
      else
        largest = std::max(largest, n);
    }
    m.params += (2 * largest + persistent) * b.param;
  }
  m.activations = activation_bytes(cfg, o.micro_batch, o.checkpointing, b.activation);
  return m;
}

}  // namespace vitscale::scaling
