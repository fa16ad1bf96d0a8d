// attention_plan_test.cpp — how the tensor-core attention cuts the sequence
// (kernels/cuda/attention_chunks.h): one shared-memory chunk of round_up(T, 16)
// for T <= 128 in the forward, the dQ and the dK/dV kernels, register tiles
// fixed per head size, shared memory within the card's limit; and the head
// sizes the flash path takes. Host-only checks (no GPU needed); the kernels
// themselves are tested in attention_test.cpp.
#include <catch2/catch.hpp>

#include "kernels/cuda/attention_chunks.h"
#include "kernels/cuda/attention_impl.h"

using namespace vitscale::cuda::attn;

namespace {

constexpr std::size_t kSm90Smem = 227 * 1024;  // H100/H200 opt-in limit per block

}  // namespace

TEST_CASE("flash chunks: T <= 128 is one chunk of round_up(T, 16) in every kernel and longer T streams in tiles",
          "[cuda][attention][plan]") {
  struct Expect {
    int T, chunk;
  };
  // round_up(T, 16) up to 128; past it each kernel streams its register tile.
  const Expect one[] = {{1, 16}, {16, 16}, {50, 64}, {64, 64}, {65, 80}, {80, 80}, {97, 112}, {112, 112}, {128, 128}};
  for (int hd : kFlashHeadDims) {
    for (const Expect& e : one) {
      INFO("T=" << e.T << " hd=" << hd);
      const FlashChunks c = flash_chunks(e.T, hd, kSm90Smem);
      CHECK(c.forward_keys == e.chunk);
      CHECK(c.dq_keys == e.chunk);
      CHECK(c.dkdv_queries == e.chunk);
      CHECK(flash_chunk_count(e.T, c.forward_keys) == 1);
      CHECK(flash_chunk_count(e.T, c.dq_keys) == 1);
      CHECK(flash_chunk_count(e.T, c.dkdv_queries) == 1);
    }
    for (int T : {129, 197, 257}) {
      INFO("T=" << T << " hd=" << hd);
      const FlashChunks c = flash_chunks(T, hd, kSm90Smem);
      CHECK(c.forward_keys == 64);
      CHECK(c.forward_tile == 64);
      CHECK(c.dq_keys == c.dq_tile);
      CHECK(c.dkdv_queries == c.dkdv_tile);
      CHECK(flash_chunk_count(T, c.dq_keys) > 1);
    }
  }
}

TEST_CASE("flash tiles: the instantiated register tiles per head size", "[cuda][attention][plan]") {
  // Forward: 80 only for a chunk of exactly 80 keys (T = 65..80), never at hd 80 (ptxas spills it).
  for (int hd : kFlashHeadDims) {
    INFO("hd=" << hd);
    CHECK(flash_chunks(65, hd, kSm90Smem).forward_tile == (hd == 80 ? 64 : 80));
    CHECK(flash_chunks(97, hd, kSm90Smem).forward_tile == 64);
    CHECK(flash_chunks(50, hd, kSm90Smem).forward_tile == 64);
  }
  CHECK(flash_dq_tile(32) == 64);
  CHECK(flash_dq_tile(64) == 64);
  CHECK(flash_dq_tile(80) == 32);
  CHECK(flash_dq_tile(128) == 32);
  CHECK(flash_dkdv_tile(32) == 64);
  CHECK(flash_dkdv_tile(48) == 32);
  CHECK(flash_dkdv_tile(64) == 32);
  CHECK(flash_dkdv_tile(96) == 16);
  CHECK(flash_dkdv_tile(128) == 16);
}

TEST_CASE("flash shared memory: sizes, the 48 KiB line, and the fall-back on a smaller card",
          "[cuda][attention][plan]") {
  // The layout of attention_flash.cu: row-major (chunk, hd + 8), transposed tile-major (tiles, hd, tile + 8).
  CHECK(flash_forward_smem_bytes(64, 80, 80) == 80 * 72 * 2 + 64 * 88 * 2);
  CHECK(flash_forward_smem_bytes(128, 64, 64) == 35840);  // the old static 64-key kernel's bytes
  CHECK(flash_dq_smem_bytes(128, 32, 32) == 27648);
  CHECK(flash_dkdv_smem_bytes(128, 16, 16) == 21120);
  // The largest one-chunk cut: dK/dV at hd 128, T = 128 (8 tiles of 16 queries).
  CHECK(flash_dkdv_smem_bytes(128, 128, 16) == 2 * 128 * 136 * 2 + 2 * 8 * 128 * 24 * 2 + 2 * 128 * 4);
  CHECK(flash_dkdv_smem_bytes(128, 128, 16) == 168960);
  for (int hd : kFlashHeadDims)
    for (int T : {1, 16, 50, 64, 65, 80, 97, 112, 128, 129, 197, 257}) {
      INFO("T=" << T << " hd=" << hd);
      const FlashChunks c = flash_chunks(T, hd, kSm90Smem);
      CHECK(flash_forward_smem_bytes(hd, c.forward_keys, c.forward_tile) <= kSm90Smem);
      CHECK(flash_dq_smem_bytes(hd, c.dq_keys, c.dq_tile) <= kSm90Smem);
      CHECK(flash_dkdv_smem_bytes(hd, c.dkdv_queries, c.dkdv_tile) <= kSm90Smem);
      CHECK(c.forward_keys % 16 == 0);
      CHECK(c.dq_keys % 16 == 0);
      CHECK(c.dkdv_queries % 16 == 0);
    }
  // Past 48 KiB (needs the raised dynamic limit): e.g. dK/dV at hd 64, T = 128.
  CHECK(flash_dkdv_smem_bytes(64, 128, 32) > 48 * 1024);
  // A card allowing only 100 KiB: the cuts that would not fit stream in tiles instead.
  const FlashChunks small = flash_chunks(128, 128, 100 * 1024);
  CHECK(small.forward_keys == 128);  // 68 KiB fits
  CHECK(small.dq_keys == 32);        // 104 KiB does not: the dQ tile
  CHECK(small.dkdv_queries == 16);   // 165 KiB does not
}

TEST_CASE("flash path head sizes: every tensor-core multiple of 16 up to 128 that ViTs use",
          "[cuda][attention][plan]") {
  for (int hd : kFlashHeadDims) CHECK(flash_supports_head_dim(hd));
  for (int hd : {16, 40, 72, 100, 112, 160}) CHECK_FALSE(flash_supports_head_dim(hd));
}
