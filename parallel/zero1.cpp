#include "parallel/zero1.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace vitscale {

CommRequest all_gather_range(Communicator& comm, const ShardLayout& layout, TensorView range, std::int64_t begin) {
  return comm.all_gather(range, layout.split(begin, range.numel()));
}

Zero1Optimizer::Zero1Optimizer(Communicator& comm, Backend& backend, const ParamTable& table,
                               std::int64_t gather_bucket_elements, bool overlap_gather)
    : comm_(comm),
      backend_(backend),
      layout_(table.total_numel(), comm.world_size()),
      gather_bucket_(gather_bucket_elements),
      overlap_gather_(overlap_gather),
      groups_(table.weight_groups()),
      adamw_(backend, table, layout_.begin(comm.rank()), layout_.count(comm.rank())) {
  if (gather_bucket_ < 1)
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) +
                                ": ZeRO-1: allgather_bucket_size must be at least 1, got " +
                                std::to_string(gather_bucket_));
  const std::int64_t n = layout_.count(comm.rank());
  shard_grads_arena_ = make_arena(backend_, "zero1 shard gradients", [&](ArenaCarver& c) {
    shard_grads_ = c.take(DType::f32, {std::max<std::int64_t>(n, 1)}).slice_flat(0, n);
  });
  if (n > 0) backend_.fill_zero(shard_grads_);
  in_flight_.resize(groups_.size());
  if (overlap_gather_)
    for (std::size_t g = 0; g < groups_.size(); ++g)
      for (std::int64_t at = groups_[g].begin; at < groups_[g].end(); at += gather_bucket_)
        piece_group_.push_back(static_cast<int>(g));
}

void Zero1Optimizer::step(TensorView params, const AdamWHyper& hyper, CommTiming* timing) {
  if (params.dtype != DType::f32 || params.numel() != layout_.total)
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) + ": ZeRO-1 step: parameters " +
                                params.describe() + " are not the model's " + std::to_string(layout_.total) +
                                " f32 weights");
  // The last step's gather still sends from the shard AdamW is about to
  // write (normally long done: the forward in between waited for it).
  for (int g = 0; g < static_cast<int>(groups_.size()); ++g) wait_group(g);
  update_shard(params.slice_flat(shard_begin(), shard_count()), hyper, timing);
  if (overlap_gather_) {
    // Issued in forward order, so the FIFO engines finish the embedding first.
    const auto pieces = gather_pieces();
    for (std::size_t i = 0; i < pieces.size(); ++i)
      in_flight_[static_cast<std::size_t>(piece_group_[i])].push_back(
          all_gather_range(comm_, layout_, params.slice_flat(pieces[i].first, pieces[i].second), pieces[i].first));
    return;
  }
  const double gather_s = gather(params);
  if (timing) timing->gather_s += gather_s;
}

bool Zero1Optimizer::wait_group(int group) {
  std::vector<CommRequest>& pending = in_flight_.at(static_cast<std::size_t>(group));
  if (pending.empty()) return false;
  const auto t0 = std::chrono::steady_clock::now();
  for (CommRequest& r : pending) r.wait();
  overlapped_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (CommRequest& r : pending) overlapped_busy_s_ += r.busy_seconds();
  pending.clear();
  return true;
}

int Zero1Optimizer::pending_gather_groups() const {
  int n = 0;
  for (const auto& pending : in_flight_) n += pending.empty() ? 0 : 1;
  return n;
}

double Zero1Optimizer::take_overlapped_gather_seconds() { return std::exchange(overlapped_busy_s_, 0.0); }

void Zero1Optimizer::update_shard(TensorView master_shard, const AdamWHyper& hyper, CommTiming* timing) {
  if (master_shard.numel() != shard_count())
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) + ": ZeRO update: master shard " +
                                master_shard.describe() + " is not this rank's " + std::to_string(shard_count()) +
                                " elements");
  adamw_.compute_grad_norm_sq(shard_grads_);
  CommRequest norm = comm_.all_reduce(adamw_.grad_norm_sq());
  norm.wait();
  adamw_.update(master_shard, shard_grads_, hyper);
  if (timing) timing->gather_s += norm.busy_seconds();
}

std::vector<std::pair<std::int64_t, std::int64_t>> Zero1Optimizer::gather_pieces() const {
  std::vector<std::pair<std::int64_t, std::int64_t>> pieces;
  if (!overlap_gather_) {
    for (std::int64_t at = 0; at < layout_.total; at += gather_bucket_)
      pieces.emplace_back(at, std::min(gather_bucket_, layout_.total - at));
    return pieces;
  }
  for (const ParamTable::Range& g : groups_)
    for (std::int64_t at = g.begin; at < g.end(); at += gather_bucket_)
      pieces.emplace_back(at, std::min(gather_bucket_, g.end() - at));
  return pieces;
}

double Zero1Optimizer::gather(TensorView flat) {
  std::vector<CommRequest> requests;
  for (const auto& [begin, count] : gather_pieces())
    requests.push_back(all_gather_range(comm_, layout_, flat.slice_flat(begin, count), begin));
  double busy = 0;
  for (CommRequest& r : requests) {
    r.wait();
    busy += r.busy_seconds();
  }
  return busy;
}

std::size_t Zero1Optimizer::full_state_bytes() const {
  return 2 * static_cast<std::size_t>(layout_.total) * sizeof(float);
}

std::string Zero1Optimizer::memory_report() const {
  auto mib = [](std::size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  char line[400];
  std::snprintf(line, sizeof line,
                "ZeRO-%d: optimizer state on rank %d: %.2f MiB (elements %lld..%lld of %lld; %.2f MiB unsharded, "
                "1/%d), shard gradients %.2f MiB, parameter all-gather in %zu piece(s) of <= %lld elements",
                stage_, comm_.rank(), mib(state_bytes()), static_cast<long long>(shard_begin()),
                static_cast<long long>(shard_begin() + shard_count()), static_cast<long long>(layout_.total),
                mib(full_state_bytes()), layout_.world, mib(shard_grad_bytes()), gather_pieces().size(),
                static_cast<long long>(gather_bucket_));
  std::string report = line;
  if (overlap_gather_) report += ", cut at the weight groups and overlapped with the next forward";
  // ZeRO-3 never gathers after the step: each group is gathered where it is used.
  if (stage_ == 3) report.erase(report.find(", parameter all-gather"));
  return report;
}

void Zero1Optimizer::gather_state(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq) {
  const auto n = static_cast<std::size_t>(layout_.total);
  // A temporary full-length device buffer: checkpointing only, never in the step.
  Buffer full = backend_.allocate(n * sizeof(float), "zero1 state gather");
  const TensorView all(full.get(), DType::f32, {layout_.total});
  for (auto [src, dst] : {std::pair{adamw_.exp_avg(), &exp_avg}, std::pair{adamw_.exp_avg_sq(), &exp_avg_sq}}) {
    if (shard_count() > 0)
      backend_.copy_device(all.slice_flat(shard_begin(), shard_count()).data, src.data, src.bytes());
    gather(all);
    dst->resize(n);
    backend_.copy_to_host(dst->data(), all.data, all.bytes());
  }
}

void Zero1Optimizer::load_state(std::span<const float> exp_avg, std::span<const float> exp_avg_sq) {
  const auto n = static_cast<std::size_t>(layout_.total);
  if (exp_avg.size() != n || exp_avg_sq.size() != n)
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) + ": ZeRO-1 state has " +
                                std::to_string(exp_avg.size()) + " / " + std::to_string(exp_avg_sq.size()) +
                                " moments, the model has " + std::to_string(n) + " parameters");
  if (shard_count() == 0) return;
  const auto at = static_cast<std::size_t>(shard_begin());
  backend_.copy_to_device(adamw_.exp_avg().data, exp_avg.data() + at, adamw_.exp_avg().bytes());
  backend_.copy_to_device(adamw_.exp_avg_sq().data, exp_avg_sq.data() + at, adamw_.exp_avg_sq().bytes());
  backend_.synchronize();
}

}  // namespace vitscale
