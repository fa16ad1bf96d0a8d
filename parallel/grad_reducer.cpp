#include "parallel/grad_reducer.h"

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
    : comm_(comm),
      grads_(grads),
      options_(options),
      plan_(plan_buckets(table, options.bucket_bytes, options.first_bucket_bytes)) {
  check_grads(table, grads);
  requests_.reserve(plan_.buckets.size());
}

GradReducer::GradReducer(Communicator& comm, const ParamTable& table, TensorView grads, const ReducerOptions& options,
                         const ShardLayout& layout, TensorView shard_grads)
    : GradReducer(comm, table, grads, options) {
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

void GradReducer::begin_step(bool final_micro_step) {
  if (in_step_ && final_)
    throw std::logic_error("GradReducer::begin_step: the previous window's final micro-step was not finish()ed");
  in_step_ = true;
  final_ = final_micro_step;
  watermark_ = plan_.total;
}

void GradReducer::launch_next() {
  const std::size_t i = requests_.size();
  const Bucket& b = plan_.buckets[i];
  const TensorView slice = grads_.slice_flat(b.begin, b.count);
  requests_.push_back(zero1_ ? comm_.reduce_scatter(slice, bucket_recv_[i], bucket_counts_[i])
                             : comm_.all_reduce(slice));
}

void GradReducer::grads_ready_from(std::int64_t offset) {
  if (!in_step_) throw std::logic_error("GradReducer: gradients reported ready outside a step (call begin_step first)");
  if (!final_) return;  // accumulating: no communication at all
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
  t.exposed_s = comm_.wait_all(requests_);
  for (const CommRequest& r : requests_) t.reduce_s += r.busy_seconds();
  t.buckets = static_cast<int>(requests_.size());
  t.bytes = static_cast<std::size_t>(plan_.total) * sizeof(float);
  requests_.clear();  // keeps its capacity: no allocation next step
  in_step_ = false;
  return t;
}

}  // namespace vitscale
