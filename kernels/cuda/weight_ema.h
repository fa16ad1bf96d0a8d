// weight_ema.h — the moving average of the weights on the device (timm's
// ModelEma): ema ← decay·ema + (1 − decay)·params, one pass, each product
// rounded before the add (no FMA), so the bits equal the CPU reference
// (kernels/cpu/weight_ema.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitscale::cuda {

// ema (n) f32 updated in place; params (n) f32 read. decay is a kernel
// argument, which a captured graph would freeze: the trainer runs this
// between the captured phases, never inside one.
void weight_ema_update(cudaStream_t stream, float* ema, const float* params, std::int64_t n, float decay);

}  // namespace vitscale::cuda
