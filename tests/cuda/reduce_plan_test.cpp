// reduce_plan_test.cpp — the column-sum scratch sizing (kernels/cuda/reduce_plan.h)
// is pure host arithmetic: checked here on any machine, GPU or not.
#include <catch2/catch.hpp>

#include "kernels/cuda/reduce_plan.h"

using namespace vitscale;
using namespace vitscale::cuda;

namespace {
// Bytes the launch itself writes: one f32 partial per (chunk, column).
std::size_t launch_bytes(long long M, int N, int kv, int sms) {
  return static_cast<std::size_t>(column_chunks(M, N, kv, sms)) * static_cast<std::size_t>(N) * sizeof(float);
}
}  // namespace

TEST_CASE("column-sum scratch covers the bf16 launch of 8 columns per thread (M=394, N=768, 132 SMs)",
          "[cuda][reduce][plan]") {
  // The case the review found: sized for kv 4 (44 chunks), bf16 launches kv 8 (50 chunks).
  CHECK(column_chunks(394, 768, 4, 132) == 44);
  CHECK(column_chunks(394, 768, 8, 132) == 50);
  CHECK(column_pack(DType::bf16, true, 768) == 8);
  CHECK(column_sum_scratch_bytes(DType::bf16, 394, 768, 132) == 50u * 768u * 4u);
  CHECK(column_sum_scratch_bytes(DType::f32, 394, 768, 132) == 44u * 768u * 4u);
}

TEST_CASE("column-sum scratch covers every width each dtype can launch", "[cuda][reduce][plan]") {
  for (const DType dt : {DType::f32, DType::bf16}) {
    for (const int sms : {1, 46, 108, 132, 144}) {
      for (const long long M : {1LL, 7LL, 8LL, 65LL, 394LL, 4160LL, 16640LL, 50432LL}) {
        for (const int N : {1, 10, 96, 100, 192, 384, 768, 1000, 1536, 3072}) {
          for (const bool aligned : {false, true}) {
            const int kv = column_pack(dt, aligned, N);
            INFO(dtype_name(dt) << " M=" << M << " N=" << N << " sms=" << sms << " kv=" << kv);
            CHECK(launch_bytes(M, N, kv, sms) <= column_sum_scratch_bytes(dt, M, N, sms));
          }
        }
      }
    }
  }
}

TEST_CASE("column-sum packs: 16 bytes when aligned and N divides, else one column", "[cuda][reduce][plan]") {
  CHECK(column_pack(DType::f32, true, 384) == 4);
  CHECK(column_pack(DType::f32, true, 386) == 1);
  CHECK(column_pack(DType::f32, false, 384) == 1);
  CHECK(column_pack(DType::bf16, true, 388) == 1);  // 388 % 4 == 0 but % 8 != 0
  CHECK(column_pack(DType::bf16, true, 384) == 8);
  // Chunks never exceed one per 8 rows, never drop below one.
  CHECK(column_chunks(8, 768, 8, 132) == 1);
  CHECK(column_chunks(1, 1, 1, 0) == 1);
  CHECK(column_chunks(1 << 20, 1, 1, 132) == 264);
}
