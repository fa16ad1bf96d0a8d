#include "parallel/zero3_params.h"

#include "parallel/zero1.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace vitscale {

Zero3Params::Zero3Params(Communicator& comm, Backend& backend, const ParamTable& table, const ShardLayout& layout,
                         const Zero3Options& options)
    : comm_(comm), backend_(backend), layout_(layout), options_(options), groups_(table.weight_groups()) {
  const std::string where = "rank " + std::to_string(comm.rank()) + ": ZeRO-3: ";
  if (backend.activation_dtype() != DType::f32)
    throw std::invalid_argument(where + "gathers the fp32 masters and computes on them; " +
                                dtype_name(backend.activation_dtype()) +
                                " activations (a compute copy per gathered group) are not implemented");
  if (options.prefetch_bucket_elements < 0 || options.persistence_threshold < 0 || options.max_live_elements < 1)
    throw std::invalid_argument(where + "stage3_prefetch_bucket_size and stage3_param_persistence_threshold must be "
                                        ">= 0 and stage3_max_live_parameters >= 1");
  std::int64_t largest = 0, persistent = 0;
  persistent_.assign(groups_.size(), TensorView{});
  for (const ParamTable::Range& g : groups_) {
    if (g.count <= options.persistence_threshold)
      persistent += g.count;
    else
      largest = std::max(largest, g.count);
  }
  int slots = largest == 0 ? 0 : 2;
  if (slots == 2 && (options.prefetch_bucket_elements == 0 || persistent + 2 * largest > options.max_live_elements))
    slots = 1;
  if (persistent + slots * largest > options.max_live_elements)
    throw std::invalid_argument(where + "stage3_max_live_parameters " + std::to_string(options.max_live_elements) +
                                " is less than one block's " + std::to_string(largest) + " elements plus " +
                                std::to_string(persistent) + " persistent ones (stage3_param_persistence_threshold " +
                                std::to_string(options.persistence_threshold) + ")");
  const std::int64_t mine = layout_.count(comm.rank());
  master_arena_ = make_arena(backend, "zero3 parameter shard", [&](ArenaCarver& c) {
    master_ = c.take(DType::f32, {std::max<std::int64_t>(mine, 1)}).slice_flat(0, mine);
  });
  slots_.resize(static_cast<std::size_t>(slots));
  working_arena_ = make_arena(backend, "zero3 gathered parameters", [&](ArenaCarver& c) {
    for (Slot& s : slots_) s.data = c.take(DType::f32, {largest});
    for (std::size_t g = 0; g < groups_.size(); ++g)
      if (groups_[g].count <= options.persistence_threshold) persistent_[g] = c.take(DType::f32, {groups_[g].count});
  });
  if (mine > 0) backend.fill_zero(master_);
}

void Zero3Params::start_gather(int group, TensorView dst) {
  const ParamTable::Range& g = groups_[static_cast<std::size_t>(group)];
  // This rank's part of the group goes to its place; the in-place all-gather
  // fills in the other ranks' (shards are contiguous and in rank order).
  const std::int64_t mb = layout_.begin(comm_.rank()), me = mb + layout_.count(comm_.rank());
  const std::int64_t lo = std::max(g.begin, mb), hi = std::min(g.end(), me);
  if (lo < hi)
    backend_.copy_device(dst.slice_flat(lo - g.begin, hi - lo).data, master_.slice_flat(lo - mb, hi - lo).data,
                         static_cast<std::size_t>(hi - lo) * sizeof(float));
  ++gathers_;
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (s.data.data == dst.data) slot = &s;
  CommRequest r = all_gather_range(comm_, layout_, dst.slice_flat(0, g.count), g.begin);
  if (slot) {
    slot->gather = std::move(r);
    slot->group = group;
    slot->counted = false;
  } else {
    r.wait();  // persistent groups: gathered outside any pass
    persistent_busy_s_ += r.busy_seconds();
  }
}

void Zero3Params::settle(Slot& s, bool timed) {
  const auto t0 = std::chrono::steady_clock::now();
  s.gather.wait();
  if (timed) wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.counted) busy_s_ += s.gather.busy_seconds();
  s.counted = true;
}

int Zero3Params::slot_holding(int group) const {
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].group == group) return static_cast<int>(i);
  return -1;
}

TensorView Zero3Params::acquire(int group, Pass pass) {
  const auto gi = static_cast<std::size_t>(group);
  if (!persistent_[gi].empty()) return persistent_[gi];
  int at = slot_holding(group);
  if (at < 0) {
    for (std::size_t i = 0; i < slots_.size() && at < 0; ++i)
      if (!slots_[i].in_use) at = static_cast<int>(i);
    if (at < 0) throw std::logic_error("ZeRO-3: every gather buffer is in use (groups acquired out of order)");
    Slot& s = slots_[static_cast<std::size_t>(at)];
    settle(s, true);  // a stale prefetch still writing it
    start_gather(group, s.data);
  }
  Slot& s = slots_[static_cast<std::size_t>(at)];
  settle(s, true);
  s.in_use = true;
  // Prefetch the group this pass visits next into the other buffer.
  const int next = pass == Pass::forward ? group + 1 : group - 1;
  if (slots_.size() == 2 && next >= 0 && next < static_cast<int>(groups_.size()) &&
      persistent_[static_cast<std::size_t>(next)].empty() &&
      groups_[static_cast<std::size_t>(next)].count <= options_.prefetch_bucket_elements && slot_holding(next) < 0) {
    Slot& other = slots_[static_cast<std::size_t>(1 - at)];
    if (!other.in_use) {
      settle(other, true);
      start_gather(next, other.data);
    }
  }
  return s.data.slice_flat(0, groups_[gi].count);
}

void Zero3Params::release(int group) {
  const int at = slot_holding(group);
  if (at >= 0) slots_[static_cast<std::size_t>(at)].in_use = false;
}

double Zero3Params::refresh() {
  // The slots' last gathers completed inside backward (waited for, and
  // counted, there): nothing of theirs is exposed here.
  for (Slot& s : slots_) {
    settle(s, false);
    s.group = -1;
    s.in_use = false;
  }
  for (std::size_t g = 0; g < groups_.size(); ++g)
    if (!persistent_[g].empty()) start_gather(static_cast<int>(g), persistent_[g]);
  return std::exchange(persistent_busy_s_, 0.0);
}

void Zero3Params::write_full(std::span<const float> host) {
  if (static_cast<std::int64_t>(host.size()) != layout_.total)
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) + ": ZeRO-3: " + std::to_string(host.size()) +
                                " parameters given, the model has " + std::to_string(layout_.total));
  if (master_.numel() > 0)
    backend_.copy_to_device(master_.data, host.data() + layout_.begin(comm_.rank()), master_.bytes());
  backend_.synchronize();
  refresh();
}

void Zero3Params::read_full(std::span<float> host) {
  if (static_cast<std::int64_t>(host.size()) != layout_.total)
    throw std::invalid_argument("rank " + std::to_string(comm_.rank()) + ": ZeRO-3: a host buffer of " +
                                std::to_string(host.size()) + " floats for " + std::to_string(layout_.total) +
                                " parameters");
  // Group by group through a working buffer (or its own persistent one).
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    TensorView buf = persistent_[g];
    if (buf.empty()) {
      Slot& s = slots_.front();
      settle(s, false);
      start_gather(static_cast<int>(g), s.data);
      settle(s, false);
      buf = s.data;
    }
    backend_.copy_to_host(host.data() + groups_[g].begin, buf.data,
                          static_cast<std::size_t>(groups_[g].count) * sizeof(float));
  }
  for (Slot& s : slots_) s.group = -1;
}

std::string Zero3Params::describe() const {
  auto mib = [](std::size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  int persistent = 0;
  for (const TensorView& p : persistent_) persistent += p.empty() ? 0 : 1;
  char line[320];
  std::snprintf(line, sizeof line,
                "ZeRO-3: parameter shard %.2f MiB, %d gather buffer(s) %s + %d persistent group(s): %.2f MiB "
                "(stage3_prefetch_bucket_size %lld, stage3_param_persistence_threshold %lld, "
                "stage3_max_live_parameters %lld)",
                mib(master_bytes()), buffers(), buffers() == 2 ? "(prefetching)" : "(no prefetch)", persistent,
                mib(working_bytes()), static_cast<long long>(options_.prefetch_bucket_elements),
                static_cast<long long>(options_.persistence_threshold),
                static_cast<long long>(options_.max_live_elements));
  return line;
}

}  // namespace vitscale
