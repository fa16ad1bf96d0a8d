// handle_pool.h — a thread-safe pool of reusable handles (CUDA events), host logic only.
//
// Creating a CUDA event per collective or per batch costs a driver call each
// time and, under load, a lock in the driver; an ordering event can be reused
// as soon as whatever waits on it has been enqueued or has observed it. The
// pool hands out a Lease (move-only) that gives its handle back when
// destroyed; handles are created only when none is free and destroyed with
// the pool's last owner. Leases share ownership of the pool's core, so a lease
// may outlive the pool object (a batch slot's fence destroyed after the
// backend, say) without touching freed memory.
//
// Traits: `using Handle = ...; static Handle create(); static void destroy(Handle) noexcept;`
// The CUDA instance is cuda::EventPool (cuda_handles.h); tests use a counting fake.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace vitscale::cuda {

template <class Traits>
class HandlePool {
  struct Core;

 public:
  using Handle = typename Traits::Handle;

  class Lease {
   public:
    Lease() = default;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&& o) noexcept : core_(std::move(o.core_)), handle_(std::exchange(o.handle_, Handle{})) {}
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        give_back();
        core_ = std::move(o.core_);
        handle_ = std::exchange(o.handle_, Handle{});
      }
      return *this;
    }
    ~Lease() { give_back(); }
    Handle get() const { return handle_; }
    explicit operator bool() const { return core_ != nullptr; }

   private:
    friend class HandlePool;
    Lease(std::shared_ptr<Core> core, Handle h) : core_(std::move(core)), handle_(h) {}
    void give_back() noexcept {
      if (core_) core_->put(handle_);
      core_.reset();
      handle_ = Handle{};
    }
    std::shared_ptr<Core> core_;
    Handle handle_{};
  };

  HandlePool() : core_(std::make_shared<Core>()) {}
  HandlePool(const HandlePool&) = delete;
  HandlePool& operator=(const HandlePool&) = delete;

  // A free handle, or a new one when none is free. Thread-safe.
  Lease acquire() {
    Handle h{};
    if (!core_->take(h)) {
      h = Traits::create();  // may throw; nothing is held yet
      try {
        core_->count_created();
      } catch (...) {
        Traits::destroy(h);
        throw;
      }
    }
    return Lease(core_, h);
  }
  // Handles made so far / handles waiting in the free list (for tests and reports).
  std::size_t created() const { return core_->counts().first; }
  std::size_t free_count() const { return core_->counts().second; }

 private:
  struct Core {
    std::mutex mutex;
    std::vector<Handle> free;
    std::size_t created = 0;
    Core() = default;
    Core(const Core&) = delete;
    Core& operator=(const Core&) = delete;
    ~Core() {
      for (Handle h : free) Traits::destroy(h);
    }
    bool take(Handle& h) {
      std::lock_guard lock(mutex);
      if (free.empty()) return false;
      h = free.back();
      free.pop_back();
      return true;
    }
    // Room for every handle in the free list is reserved when it is made, so
    // giving one back never allocates (put is noexcept).
    void count_created() {
      std::lock_guard lock(mutex);
      free.reserve(created + 1);
      ++created;
    }
    void put(Handle h) noexcept {
      std::lock_guard lock(mutex);
      free.push_back(h);
    }
    std::pair<std::size_t, std::size_t> counts() {
      std::lock_guard lock(mutex);
      return {created, free.size()};
    }
  };
  std::shared_ptr<Core> core_;
};

}  // namespace vitscale::cuda
