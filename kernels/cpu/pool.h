// pool.h — the classifier's input from the last block's tokens: the class
// token's row (timm global_pool='token') or the mean over tokens ('avg').
#pragma once

#include <cstdint>

namespace vitscale::cpu {

enum class PoolKind { first_token, mean };

// pooled[b] = x[b, 0] or mean_t x[b, t] (summed in double).
void pool_forward(float* pooled,   // (B, D)
                  const float* x,  // (B, T, D)
                  std::int64_t B, std::int64_t T, std::int64_t D, PoolKind kind);

// d_x (assigned) = d_pooled in row 0 and zeros elsewhere (first_token), or
// d_pooled / T in every row (mean).
void pool_backward(float* d_x,             // (B, T, D)
                   const float* d_pooled,  // (B, D)
                   std::int64_t B, std::int64_t T, std::int64_t D, PoolKind kind);

}  // namespace vitscale::cpu
