// host_read_fence.h — "the device has finished reading this host memory".
//
// copy_to_device may return before the copy has run (CUDA: cudaMemcpyAsync
// from pinned memory on the compute stream), so the host memory it reads must
// not be refilled until the copy has completed. Instead of synchronising the
// device after every upload, the backend hands out a fence recorded after the
// copies (Backend::host_reads_done) and the memory's owner waits on it only
// when it is about to reuse the memory: the loader's worker, before refilling
// a batch slot, normally long after the copy finished. A default fence is
// already complete (the CPU backend copies synchronously). Move-only; wait()
// may be called from any thread, more than once; the destructor waits too, so
// memory that outlives its fence is never freed under a running copy.
#pragma once

#include <functional>
#include <utility>

namespace vitscale {

class HostReadFence {
 public:
  HostReadFence() = default;
  // `wait_for_reads` blocks until the reads are complete; it throws on a device error.
  explicit HostReadFence(std::function<void()> wait_for_reads) : wait_(std::move(wait_for_reads)) {}
  HostReadFence(const HostReadFence&) = delete;
  HostReadFence& operator=(const HostReadFence&) = delete;
  HostReadFence(HostReadFence&& o) noexcept : wait_(std::exchange(o.wait_, nullptr)) {}
  HostReadFence& operator=(HostReadFence&& o) noexcept {
    if (this != &o) {
      wait_quietly();
      wait_ = std::exchange(o.wait_, nullptr);
    }
    return *this;
  }
  ~HostReadFence() { wait_quietly(); }

  bool pending() const { return static_cast<bool>(wait_); }
  // Blocks until the device has read the memory; afterwards the fence is complete.
  void wait() {
    if (!wait_) return;
    auto w = std::exchange(wait_, nullptr);
    w();
  }

 private:
  void wait_quietly() noexcept {
    try {
      wait();
    } catch (...) {  // a device error at teardown: the next device call reports it
    }
  }
  std::function<void()> wait_;
};

}  // namespace vitscale
