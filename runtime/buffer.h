// buffer.h — owning RAII handles for one allocation (device or host memory).
//
// A Buffer is a pointer, a size and the function that frees it; move-only. The
// arenas hold one Buffer each. Which allocator made it (aligned malloc, cudaMalloc,
// cudaMallocHost) is the backend's business, so data/ can ask for pinned host
// memory without knowing about CUDA.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>

namespace vitscale {

class Buffer {
 public:
  using Deleter = std::function<void(void*)>;

  Buffer() = default;
  Buffer(void* ptr, std::size_t bytes, Deleter free) : ptr_(ptr), bytes_(bytes), free_(std::move(free)) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~Buffer() {
    if (ptr_ && free_) free_(ptr_);
  }

  void* get() const { return ptr_; }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  void swap(Buffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(free_, o.free_);
  }
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Deleter free_;
};

// 64-byte aligned host memory (cache-line and AVX-512 friendly). Throws
// std::bad_alloc naming the size on failure.
Buffer allocate_host_aligned(std::size_t bytes);

// How data/ asks for the host memory it fills batches into: the CPU backend
// gives aligned memory, the CUDA backend pinned memory.
using HostAllocator = std::function<Buffer(std::size_t bytes)>;

}  // namespace vitscale
