// gemm_avx512.cpp — gemm_tiles.h compiled for AVX-512F (kernels/cpu/CMakeLists.txt
// gives this file -mavx512f); called only when the CPU reports AVX-512F.
#include "kernels/cpu/gemm.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include "kernels/cpu/gemm_tiles.h"

namespace vitscale::cpu {
GemmTile gemm_avx512_tile() { return kTile; }
void gemm_avx512(const GemmArgs& args, float* packed_a, float* packed_b) { blocked_gemm(args, packed_a, packed_b); }
}  // namespace vitscale::cpu
#endif
