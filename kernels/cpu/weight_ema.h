// weight_ema.h — the exponential moving average of the weights (timm's
// ModelEma): after each optimizer step,
//   ema ← decay·ema + (1 − decay)·params
// written as two roundings and one add, no fused multiply-add, so the CPU and
// the CUDA kernel (kernels/cuda/weight_ema.cu) give the same bits.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

// ema (n) f32 is updated in place; params (n) f32 is read.
void weight_ema_update(float* ema,           // (n)
                       const float* params,  // (n)
                       std::int64_t n, float decay);

}  // namespace vitscale::cpu
