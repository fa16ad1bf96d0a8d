// attention_chunks.h — how the tensor-core attention kernels cut the sequence
// (attention_flash.cu), as pure host arithmetic with no CUDA in it.
//
// Two sizes per kernel:
//   * the chunk: rows of the streamed operand (keys in the forward and the dQ
//     kernel, queries in the dK/dV kernel) that one shared-memory load holds,
//     between one pair of barriers. For T <= 128 it is round_up(T, 16): the
//     whole sequence in one load, zero-filled past T (ViT on 32x32 at patch 4,
//     T = 65, loads 80 rows once instead of 64 + 64 with one key in the second;
//     T = 97 and T = 128 likewise). Longer sequences stream in chunks of the tile.
//   * the tile: columns of S (or Sᵀ) one warp holds in registers at a time,
//     fixed per head size at compile time because the accumulators of a tile
//     (S, dP: tile/2 floats each per thread) must stay in registers (< 255 at
//     8 warps per block, no spills: docs/cuda.md quotes ptxas). A chunk wider
//     than the tile is walked tile by tile from shared memory (the forward
//     rescales its running softmax between tiles, exactly as between chunks).
// A chunk whose shared memory would pass the card's per-block opt-in limit
// falls back to streaming in tiles (the old behaviour); on sm_90 (227 KiB) the
// largest one-chunk case, dK/dV at hd 128 and T = 128, takes 165 KiB.
#pragma once

#include <cstddef>

namespace vitscale::cuda::attn {

// The head sizes the flash kernels are instantiated for (multiples of 16).
inline constexpr int kFlashHeadDims[] = {32, 48, 64, 80, 96, 128};
constexpr int kOneChunkMaxTokens = 128;  // T up to this: one chunk of round_up(T, 16)

constexpr int round_up16(int n) { return (n + 15) / 16 * 16; }

// Register tiles, per head size (the instantiated kernels: attention_flash.cu).
// Forward: 64 key columns, or 80 when the chunk is exactly 80 (T = 65..80:
// one tile, no rescale) except at hd 80, where ptxas spills the 80-wide tile.
constexpr int flash_forward_tile(int hd, int chunk) { return chunk == 80 && hd != 80 ? 80 : 64; }
// dQ: S and dP of a tile live together (tile floats per thread).
constexpr int flash_dq_tile(int hd) { return hd <= 64 ? 64 : 32; }
// dK/dV: Sᵀ and dSᵀ of a tile plus the dK and dV accumulators (hd floats).
constexpr int flash_dkdv_tile(int hd) { return hd <= 32 ? 64 : hd <= 64 ? 32 : 16; }

// Shared-memory bytes of each kernel for `chunk` rows at head size hd with
// register tile `tile`; rows padded by 8 bf16 (16 bytes: conflict-free
// fragment loads, aligned 16-byte stores). Row-major tiles are (chunk, hd + 8);
// transposed ones are tile-major, ceil(chunk / tile) blocks of (hd, tile + 8),
// so that the kernels index inside a tile with compile-time strides.
constexpr std::size_t flash_rowmajor_bytes(int hd, int chunk) { return std::size_t(chunk) * (hd + 8) * 2; }
constexpr std::size_t flash_transposed_bytes(int hd, int chunk, int tile) {
  return std::size_t((chunk + tile - 1) / tile) * hd * (tile + 8) * 2;
}
// Forward: K row-major, V transposed.
constexpr std::size_t flash_forward_smem_bytes(int hd, int chunk, int tile) {
  return flash_rowmajor_bytes(hd, chunk) + flash_transposed_bytes(hd, chunk, tile);
}
// dQ: K and V row-major, K transposed.
constexpr std::size_t flash_dq_smem_bytes(int hd, int chunk, int tile) {
  return 2 * flash_rowmajor_bytes(hd, chunk) + flash_transposed_bytes(hd, chunk, tile);
}
// dK/dV: Q and dO row-major and transposed, lse and D (chunk floats each).
constexpr std::size_t flash_dkdv_smem_bytes(int hd, int chunk, int tile) {
  return 2 * flash_rowmajor_bytes(hd, chunk) + 2 * flash_transposed_bytes(hd, chunk, tile) + 2 * std::size_t(chunk) * 4;
}

struct FlashChunks {
  int forward_keys = 64, forward_tile = 64;  // forward: chunk and register tile (keys)
  int dq_keys = 64, dq_tile = 64;            // dQ: key chunk and tile
  int dkdv_queries = 32, dkdv_tile = 32;     // dK/dV: query chunk and tile
};

// The cut for T tokens at head size hd on a card whose blocks may take up to
// max_smem_bytes of shared memory (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr FlashChunks flash_chunks(int T, int hd, std::size_t max_smem_bytes) {
  const bool one = T <= kOneChunkMaxTokens;
  const int whole = round_up16(T < 1 ? 1 : T);
  FlashChunks c;
  c.dq_tile = flash_dq_tile(hd);
  c.dkdv_tile = flash_dkdv_tile(hd);
  const int forward_tile = flash_forward_tile(hd, whole);
  c.forward_keys = one && flash_forward_smem_bytes(hd, whole, forward_tile) <= max_smem_bytes ? whole : 64;
  c.forward_tile = flash_forward_tile(hd, c.forward_keys);
  c.dq_keys = one && flash_dq_smem_bytes(hd, whole, c.dq_tile) <= max_smem_bytes ? whole : c.dq_tile;
  c.dkdv_queries = one && flash_dkdv_smem_bytes(hd, whole, c.dkdv_tile) <= max_smem_bytes ? whole : c.dkdv_tile;
  return c;
}

// Shared-memory loads (barrier pairs) a kernel makes per block for T rows in chunks of `chunk`.
constexpr int flash_chunk_count(int T, int chunk) { return (T + chunk - 1) / chunk; }

}  // namespace vitscale::cuda::attn
