#include "runtime/tensor.h"

#include <sstream>

namespace vitscale {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
  }
  return "?";
}

TensorView::TensorView(void* p, DType t, std::initializer_list<std::int64_t> dims) : data(p), dtype(t) {
  if (dims.size() > kMaxRank) throw std::invalid_argument("TensorView: rank > 4");
  for (auto d : dims) {
    if (d < 0) throw std::invalid_argument("TensorView: negative dimension");
    shape[static_cast<std::size_t>(rank++)] = d;
  }
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[static_cast<std::size_t>(i)];
  return n;
}

std::string TensorView::describe() const {
  std::ostringstream s;
  s << dtype_name(dtype) << '(';
  for (int i = 0; i < rank; ++i) s << (i ? "," : "") << shape[static_cast<std::size_t>(i)];
  s << ')';
  return s.str();
}

TensorView TensorView::reshaped(std::initializer_list<std::int64_t> dims) const {
  TensorView v(data, dtype, dims);
  if (v.numel() != numel()) throw std::invalid_argument("reshape of " + describe() + " to " + v.describe());
  return v;
}

TensorView TensorView::slice_flat(std::int64_t begin, std::int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > numel())
    throw std::invalid_argument("slice [" + std::to_string(begin) + ", +" + std::to_string(count) + ") of " + describe());
  return TensorView(static_cast<char*>(data) + static_cast<std::size_t>(begin) * dtype_size(dtype), dtype, {count});
}

void expect_shape(const char* op, const char* arg, const TensorView& t, std::initializer_list<std::int64_t> dims) {
  bool ok = t.rank == static_cast<int>(dims.size());
  int i = 0;
  for (auto d : dims) {
    if (ok && d >= 0 && t.shape[static_cast<std::size_t>(i)] != d) ok = false;
    ++i;
  }
  if (!ok) {
    std::ostringstream s;
    s << op << ": " << arg << " is " << t.describe() << ", expected (";
    i = 0;
    for (auto d : dims) s << (i++ ? "," : "") << (d < 0 ? std::string("*") : std::to_string(d));
    s << ')';
    throw std::invalid_argument(s.str());
  }
}

void expect_dtype(const char* op, const char* arg, const TensorView& t, DType dtype) {
  if (t.dtype != dtype)
    throw std::invalid_argument(std::string(op) + ": " + arg + " is " + t.describe() + ", expected dtype " + dtype_name(dtype));
}

}  // namespace vitscale
