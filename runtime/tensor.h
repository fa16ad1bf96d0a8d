// tensor.h — the non-owning tensor view every op takes, and the element types.
//
// A TensorView is a pointer, an element type and up to four dimensions; it never
// owns memory (arenas do). Ops take views so that a backend can check shapes and
// dispatch on dtype (the CUDA backend runs fp32 and bf16; the CPU backend fp32).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace vitscale {

enum class DType : std::uint8_t { f32, bf16, u8, i32 };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::u8: return 1;
    case DType::i32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }

struct TensorView {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::f32;
  std::array<std::int64_t, kMaxRank> shape{};
  int rank = 0;

  TensorView() = default;
  TensorView(void* p, DType t, std::initializer_list<std::int64_t> dims);

  bool empty() const { return data == nullptr; }
  std::int64_t dim(int i) const { return shape.at(static_cast<std::size_t>(i < 0 ? rank + i : i)); }
  std::int64_t numel() const;
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
  std::string describe() const;  // "f32(64,65,192)"

  // Typed pointer; throws when the dtype does not match T.
  template <class T> T* as() const {
    if (dtype != dtype_of<T>()) throw std::invalid_argument("tensor " + describe() + " accessed with the wrong dtype");
    return static_cast<T*>(data);
  }
  // Same memory seen with other dimensions (numel must match).
  TensorView reshaped(std::initializer_list<std::int64_t> dims) const;
  // Elements [begin, begin + count) of the flattened view, as a 1-D view.
  TensorView slice_flat(std::int64_t begin, std::int64_t count) const;
};

// Throws std::invalid_argument naming `op` when t does not have these dims
// (a -1 in `dims` matches any size).
void expect_shape(const char* op, const char* arg, const TensorView& t, std::initializer_list<std::int64_t> dims);
void expect_dtype(const char* op, const char* arg, const TensorView& t, DType dtype);

}  // namespace vitscale
