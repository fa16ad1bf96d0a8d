// attention_plan_test.cpp — which tensor-core attention the launch picks: the
// forward's key chunk from T, the head sizes the flash path takes. Host-only
// checks (no GPU needed); the kernels themselves are tested in attention_test.cpp.
#include <catch2/catch.hpp>

#include "kernels/cuda/attention_impl.h"

using namespace vitscale::cuda::attn;

TEST_CASE("flash forward key chunk: T=65 is one chunk of 80 keys, other T stream 64", "[cuda][attention][plan]") {
  CHECK(flash_forward_key_chunk(65, 64) == 80);  // ViT on 32x32 at patch 4: no second chunk for one key
  CHECK(flash_forward_key_chunk(80, 64) == 80);
  CHECK(flash_forward_key_chunk(81, 64) == 64);
  CHECK(flash_forward_key_chunk(64, 64) == 64);
  CHECK(flash_forward_key_chunk(50, 64) == 64);
  CHECK(flash_forward_key_chunk(197, 64) == 64);
  CHECK(flash_forward_key_chunk(65, 80) == 64);  // the 80-key kernel spills at hd 80: not instantiated
  for (int hd : {32, 48, 64, 96, 128}) {
    for (int T = 1; T <= 2048; ++T) {
      const int kc = flash_forward_key_chunk(T, hd);
      INFO("T=" << T << " hd=" << hd);
      CHECK((kc == 64 || kc == 80));               // the two instantiated chunk sizes
      if (T <= 80) CHECK((T + kc - 1) / kc == 1);  // every T up to 80 in one chunk
    }
  }
}

TEST_CASE("flash path head sizes: every tensor-core multiple of 16 up to 128 that ViTs use",
          "[cuda][attention][plan]") {
  for (int hd : {32, 48, 64, 80, 96, 128}) CHECK(flash_supports_head_dim(hd));
  for (int hd : {16, 40, 72, 100, 112, 160}) CHECK_FALSE(flash_supports_head_dim(hd));
}
