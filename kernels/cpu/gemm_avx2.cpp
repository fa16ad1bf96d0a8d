// gemm_avx2.cpp — gemm_tiles.h compiled for AVX2 + FMA (kernels/cpu/CMakeLists.txt
// gives this file -mavx2 -mfma); called only when the CPU reports both.
#include "kernels/cpu/gemm.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include "kernels/cpu/gemm_tiles.h"

namespace vitscale::cpu {
GemmTile gemm_avx2_tile() { return kTile; }
void gemm_avx2(const GemmArgs& args, float* packed_a, float* packed_b) { blocked_gemm(args, packed_a, packed_b); }
}  // namespace vitscale::cpu
#endif
