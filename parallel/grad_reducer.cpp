#include "parallel/grad_reducer.h"

#include <chrono>
#include <stdexcept>

namespace vitscale {

namespace {

void check_grads(const ParamTable& table, TensorView grads) {
  if (grads.dtype != DType::f32 || grads.numel() != table.total_numel())
    throw std::invalid_argument("GradReducer: gradient buffer " + grads.describe() + " is not the model's " +
                                std::to_string(table.total_numel()) + " f32 gradients");
}

}  // namespace

GradReducer::GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options)
    : GradReducer(comm, table, grads, options, true) {}

GradReducer::GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
                         bool check)
    : comm_(comm),
      grads_(grads),
      options_(options),
      plan_(plan_buckets(table, options.bucket_bytes, options.first_bucket_bytes)) {
  if (check) check_grads(table, grads);
  requests_.reserve(plan_.buckets.size());
}

GradReducer::GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
                         const ShardLayout& layout, TensorView shard_grads)
    : GradReducer(comm, table, grads, options, layout, shard_grads, true) {}

GradReducer::GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
                         const ShardLayout& layout, TensorView shard_grads, bool check)
    : GradReducer(comm, table, grads, options, check) {
  const int r = comm.rank();
  if (layout.world != comm.world_size() || layout.total != table.total_numel() ||
      shard_grads.numel() != layout.count(r) || shard_grads.dtype != DType::f32)
    throw std::invalid_argument("rank " + std::to_string(r) + ": GradReducer: shard gradients " +
                                shard_grads.describe() + " do not match the shard layout (" +
                                std::to_string(layout.count(r)) + " elements of " + std::to_string(layout.total) +
                                " over " + std::to_string(layout.world) + " ranks)");
  zero1_ = true;
  for (const Bucket& b : plan_.buckets) {
    std::vector<std::int64_t> counts = layout.split(b.begin, b.count);
    const std::int64_t mine = counts[static_cast<std::size_t>(r)];
    const std::int64_t at = mine > 0 ? std::max(b.begin, layout.begin(r)) - layout.begin(r) : 0;
    bucket_recv_.push_back(mine > 0 ? shard_grads.slice_flat(at, mine) : TensorView(shard_grads.data, DType::f32, {0}));
    bucket_counts_.push_back(std::move(counts));
  }
}

GradReducer::GradReducer(Communicator& comm, Backend& backend, const ParamTable& table, TensorView grads,
                         const ReducerOptions& options, const ShardLayout& layout, TensorView shard_grads,
                         const ShardedReduce& sharded)
    : GradReducer(comm, table, grads, options, layout, shard_grads, !sharded.window) {
  const std::string where = "rank " + std::to_string(comm.rank()) + ": GradReducer: ";
  if (sharded.every_micro_step && !sharded.window)
    throw std::invalid_argument(where + "reducing every micro-step needs the gradient window");
  backend_ = &backend;
  sharded_ = sharded;
  shard_grads_ = shard_grads;
  grads_ = sharded.window ? TensorView{} : grads;
  if (sharded.window) {
    window_plan_ = plan_grad_window(plan_, table, options.overlap_comm);
    window_arena_ = make_arena(backend, "gradient window", [&](ArenaCarver& c) {
      window_ = c.take(DType::f32, {window_plan_.capacity});
    });
    for (const ParamInfo& p : table.params()) param_ranges_.emplace_back(p.offset, p.numel);
    bucket_of_param_.assign(table.params().size(), 0);
    for (std::size_t i = 0; i < plan_.buckets.size(); ++i)
      for (int p = plan_.buckets[i].first_param; p <= plan_.buckets[i].last_param; ++p)
        bucket_of_param_[static_cast<std::size_t>(p)] = static_cast<int>(i);
  }
  if (sharded.every_micro_step) {
    const std::int64_t n = shard_grads.numel();
    scratch_arena_ = make_arena(backend, "gradient shard scratch", [&](ArenaCarver& c) {
      scratch_ = c.take(DType::f32, {std::max<std::int64_t>(n, 1)}).slice_flat(0, n);
    });
    // The same per-bucket places as bucket_recv_, in the scratch.
    for (const TensorView& r : bucket_recv_)
      bucket_scratch_recv_.push_back(
          r.numel() > 0 ? scratch_.slice_flat(static_cast<float*>(r.data) - static_cast<float*>(shard_grads.data),
                                              r.numel())
                        : TensorView(scratch_.data, DType::f32, {0}));
  }
}

void GradReducer::begin_step(bool final_micro_step) {
  if (in_step_ && final_)
    throw std::logic_error("GradReducer::begin_step: the previous window's final micro-step was not finish()ed");
  if (!window_.empty() && !final_micro_step && !sharded_.every_micro_step)
    throw std::logic_error("GradReducer: the ZeRO gradient window cannot accumulate micro-steps locally "
                           "(reduce every micro-step, or keep the model's full gradient buffer)");
  if (in_step_ && sharded_.every_micro_step) settle_micro_step(pending_);
  in_step_ = true;
  final_ = final_micro_step;
  watermark_ = plan_.total;
  next_slot_ = 0;
}

void GradReducer::settle_micro_step(CommTiming& t) {
  while (requests_.size() < plan_.buckets.size()) launch_next();  // overlap off: all of them now
  t.exposed_s += comm_.wait_all(requests_);
  for (const CommRequest& r : requests_) t.reduce_s += r.busy_seconds();
  t.buckets += static_cast<int>(requests_.size());
  t.bytes += static_cast<std::size_t>(plan_.total) * sizeof(float);
  if (!first_micro_ && scratch_.numel() > 0) backend_->add(shard_grads_, shard_grads_, scratch_);
  if (!requests_.empty()) first_micro_ = false;
  requests_.clear();
}

void GradReducer::claim_slot(int bucket) {
  const auto i = static_cast<std::size_t>(bucket);
  // The buckets that held this stretch of the ring before must be done with it.
  const auto t0 = std::chrono::steady_clock::now();
  for (int j : window_plan_.reuses[i]) {
    if (static_cast<std::size_t>(j) >= requests_.size())
      throw std::logic_error("GradReducer: gradient window slot of bucket " + std::to_string(bucket) +
                             " is still held by bucket " + std::to_string(j) + ", not launched yet");
    requests_[static_cast<std::size_t>(j)].wait();
  }
  if (!window_plan_.reuses[i].empty())
    window_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  backend_->fill_zero(window_.slice_flat(window_plan_.slot[i], plan_.buckets[i].count));
}

TensorView GradReducer::gradient_of(int param) {
  if (window_.empty()) return {};
  if (!in_step_) throw std::logic_error("GradReducer: a gradient slot asked for outside a step");
  const int b = bucket_of_param_.at(static_cast<std::size_t>(param));
  while (next_slot_ <= b) claim_slot(next_slot_++);
  const auto [offset, numel] = param_ranges_[static_cast<std::size_t>(param)];
  const Bucket& bucket = plan_.buckets[static_cast<std::size_t>(b)];
  return window_.slice_flat(window_plan_.slot[static_cast<std::size_t>(b)] + offset - bucket.begin, numel);
}

void GradReducer::launch_next() {
  const std::size_t i = requests_.size();
  const Bucket& b = plan_.buckets[i];
  const TensorView slice =
      window_.empty() ? grads_.slice_flat(b.begin, b.count) : window_.slice_flat(window_plan_.slot[i], b.count);
  if (!zero1_) return requests_.push_back(comm_.all_reduce(slice));
  const TensorView recv = first_micro_ || bucket_scratch_recv_.empty() ? bucket_recv_[i] : bucket_scratch_recv_[i];
  requests_.push_back(comm_.reduce_scatter(slice, recv, bucket_counts_[i]));
}

void GradReducer::grads_ready_from(std::int64_t offset) {
  if (!in_step_) throw std::logic_error("GradReducer: gradients reported ready outside a step (call begin_step first)");
  if (!communicating()) return;  // accumulating: no communication at all
  if (offset > watermark_ || offset < 0)
    throw std::logic_error("GradReducer: ready watermark moved from " + std::to_string(watermark_) + " to " +
                           std::to_string(offset) + "; backward must finish gradients back to front");
  watermark_ = offset;
  if (!options_.overlap_comm) return;
  while (requests_.size() < plan_.buckets.size() && plan_.buckets[requests_.size()].begin >= offset) launch_next();
  // Engines that progress only inside library calls (MPI non-blocking) move here.
  for (CommRequest& r : requests_) r.test();
}

int GradReducer::in_flight() {
  int n = 0;
  for (CommRequest& r : requests_) n += r.test() ? 0 : 1;
  return n;
}

CommTiming GradReducer::finish() {
  if (!in_step_) throw std::logic_error("GradReducer::finish without begin_step");
  CommTiming t;
  if (!final_) {
    in_step_ = false;
    return t;
  }
  t.overlapped = options_.overlap_comm;
  while (requests_.size() < plan_.buckets.size()) launch_next();
  if (sharded_.every_micro_step) {
    t = pending_;
    t.overlapped = options_.overlap_comm;
    settle_micro_step(t);
    t.buckets = static_cast<int>(plan_.buckets.size());  // per micro-step, as the other modes count
    pending_ = CommTiming{};
    first_micro_ = true;
    in_step_ = false;
    return t;
  }
  t.exposed_s = comm_.wait_all(requests_);
  for (const CommRequest& r : requests_) t.reduce_s += r.busy_seconds();
  t.buckets = static_cast<int>(requests_.size());
  t.bytes = static_cast<std::size_t>(plan_.total) * sizeof(float);
  requests_.clear();  // keeps its capacity: no allocation next step
  in_step_ = false;
  return t;
}

}  // namespace vitscale
