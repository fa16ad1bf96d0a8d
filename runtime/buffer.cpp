#include "runtime/buffer.h"

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace vitscale {

Buffer allocate_host_aligned(std::size_t bytes) {
  constexpr std::size_t kAlign = 64;
  const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = rounded ? std::aligned_alloc(kAlign, rounded) : nullptr;
  if (rounded && !p) throw std::runtime_error("host allocation of " + std::to_string(bytes) + " bytes failed");
  return Buffer(p, bytes, [](void* q) { std::free(q); });
}

}  // namespace vitscale
