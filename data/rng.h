// rng.h — counter-based random numbers for the data pipeline.
//
// Determinism contract: every random choice the pipeline makes (the epoch's
// shuffle, a sample's crop offset and flip, its RandAugment ops, a batch's
// mixup lambda) comes from a Rng whose seed is a hash of (seed, stream, epoch,
// position). No state is carried from one sample to the next, so the bytes of
// batch k depend only on (seed, epoch, rank, k) and never on which worker
// thread made them or in what order. splitmix64 (Steele, Lea, Flood 2014) is
// the hash and the generator (runtime/rng.h holds the one implementation).
//
// We never use <random>'s distributions: their output is implementation-defined,
// so the same seed could give different batches with another standard library.
#pragma once

#include <cstdint>

#include "runtime/rng.h"

namespace vitscale::data {

using vitscale::Rng;

// Distinct streams so that, e.g., the shuffle and the crops never share numbers.
enum class RngStream : std::uint64_t { shuffle = 1, sample = 2, batch_mix = 3, synthetic = 4, subset = 5 };

// The seed of one counter-based stream: hash(seed, stream, a, b).
constexpr std::uint64_t derive_key(std::uint64_t seed, RngStream stream, std::uint64_t a, std::uint64_t b = 0) {
  std::uint64_t h = mix64(seed);
  h = mix64(h ^ static_cast<std::uint64_t>(stream));
  h = mix64(h ^ a);
  return mix64(h ^ b);
}

}  // namespace vitscale::data
