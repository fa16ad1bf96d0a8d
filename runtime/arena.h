// arena.h — carving one allocation into many tensors.
//
// Memory is planned up front (llm.c's "memory as a table"): an ArenaLayout is
// run twice over the same sequence of take() calls, first with no base pointer
// to count bytes, then over the one real allocation. Nothing is allocated per step.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

#include "runtime/backend.h"
#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace vitscale {

class ArenaCarver {
 public:
  // base == nullptr: planning pass (views have null data, only bytes are counted).
  explicit ArenaCarver(void* base = nullptr) : base_(static_cast<char*>(base)) {}

  TensorView take(DType dtype, std::initializer_list<std::int64_t> dims) {
    TensorView v(nullptr, dtype, dims);
    used_ = (used_ + kAlign - 1) / kAlign * kAlign;
    if (base_) v.data = base_ + used_;
    used_ += v.bytes();
    return v;
  }
  std::size_t used() const { return (used_ + kAlign - 1) / kAlign * kAlign; }

 private:
  static constexpr std::size_t kAlign = 256;  // cudaMalloc's alignment; good for 16-byte vector loads
  char* base_;
  std::size_t used_ = 0;
};

// One allocation on a backend, named for the memory plan and error messages.
struct Arena {
  std::string name;
  Buffer buffer;
};

// Plans with `layout(carver)`, allocates once, then lays out for real.
template <class Layout>
Arena make_arena(Backend& backend, const std::string& name, Layout&& layout) {
  ArenaCarver plan;
  layout(plan);
  Arena arena{name, backend.allocate(plan.used(), name)};
  ArenaCarver real(arena.buffer.get());
  layout(real);
  return arena;
}

}  // namespace vitscale
