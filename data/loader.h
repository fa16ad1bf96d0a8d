// loader.h — the prefetching loader: worker threads fill a fixed ring of batch slots.
//
// The loader owns `prefetch_batches` Batch slots allocated once at start-up from
// the HostAllocator (pinned memory under CUDA): nothing is allocated per batch.
// The stream of batches is numbered k = 0, 1, 2, ... from (start_epoch,
// start_step); batch k is (epoch, step) = start + k, wrapping at
// steps_per_epoch. Workers claim k in order and fill slot k mod R once batch
// k - R has been released; the consumer takes k in order. Batch k's bytes come
// from BatchMaker::make(epoch, step) alone, so they do not depend on thread
// count or timing, and make_batch() reproduces any of them synchronously.
// Resuming a run at (epoch, step) is constructing (or restart()ing) the loader
// there: the batches are bit-identical to those of the uninterrupted run.
//
// next() returns a BatchLease; the slot stays untouched until the lease is
// released (destroyed or release()). A backend that copies from it
// asynchronously releases it with the copy's HostReadFence
// (release(fence)): the slot returns to the ring at once, and the worker that
// refills it waits on the fence first, so the consumer never waits for the
// copy and the copy never reads a half-refilled slot. Slot states:
// free → filling → ready → leased → free (its fence, if any, kept until the
// next fill waits on it; the ring's memory is freed only after its fences). A worker's exception
// (or a bad batch) is rethrown by next(). stop() and the destructor wake and
// join every thread, also when workers are blocked on a full ring. Leases may
// outlive the loader (they share ownership of the slots); the Dataset must
// outlive the loader.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "runtime/buffer.h"
#include "runtime/host_read_fence.h"

namespace vitscale::data {

struct LoaderConfig : BatchSpec {
  int num_workers = 2;             // 0: next() makes the batch on the calling thread
  int prefetch_batches = 4;        // R ring slots (>= 2): the bounded queue's depth
  vitscale::HostAllocator allocator;  // empty: 64-byte aligned host memory
  std::int64_t start_epoch = 0;    // where the stream starts (resume point)
  std::int64_t start_step = 0;
  std::int64_t num_epochs = 0;     // epochs from start_epoch; 0 = endless (train), 1 (eval)
};

namespace detail {
struct LoaderState;
}

// A batch held by the consumer; the slot returns to the ring when released.
class BatchLease {
 public:
  BatchLease() = default;
  BatchLease(const BatchLease&) = delete;
  BatchLease& operator=(const BatchLease&) = delete;
  BatchLease(BatchLease&& other) noexcept;
  BatchLease& operator=(BatchLease&& other) noexcept;
  ~BatchLease() { release(); }

  explicit operator bool() const { return batch_ != nullptr; }  // false: end of the stream
  const Batch& operator*() const { return *batch_; }
  const Batch* operator->() const { return batch_; }
  void release();
  // Returns the slot now; its next fill first waits on `reads` (the device's
  // copy from this batch's memory).
  void release(HostReadFence reads);

 private:
  friend class Loader;
  BatchLease(std::shared_ptr<detail::LoaderState> state, int slot, const Batch* batch)
      : state_(std::move(state)), slot_(slot), batch_(batch) {}
  std::shared_ptr<detail::LoaderState> state_;
  int slot_ = -1;
  const Batch* batch_ = nullptr;
};

class Loader {
 public:
  // Throws std::invalid_argument for a config that cannot work.
  Loader(const Dataset& dataset, const LoaderConfig& config);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::int64_t steps_per_epoch() const { return maker_.steps_per_epoch(); }
  const BatchMaker& maker() const { return maker_; }
  const LoaderConfig& config() const { return config_; }

  // The next batch of the stream, waiting for it if need be; an empty lease
  // once num_epochs are done. Throws what a worker threw, or std::logic_error
  // when every slot is leased (the consumer would wait forever).
  BatchLease next();

  // Drops whatever was prepared and continues the stream from (epoch, step),
  // for num_epochs more epochs. Throws std::logic_error while a lease is held.
  void restart(std::int64_t epoch, std::int64_t step);

  // Wakes and joins the workers; idempotent. next() then returns empty leases.
  void stop();

  // The synchronous path: batch (epoch, step) into `out` (from allocate_batch()).
  void make_batch(std::int64_t epoch, std::int64_t step, Batch& out) const;
  Batch allocate_batch() const { return maker_.allocate(config_.allocator); }

 private:
  void start_workers();
  void worker_loop();

  LoaderConfig config_;
  BatchMaker maker_;
  std::shared_ptr<detail::LoaderState> state_;
  std::vector<std::thread> workers_;
};

}  // namespace vitscale::data
