// patchify.h — images to patch vectors (the input of the patch-embedding GEMM),
// and back.
//
// A patch vector is ordered (c, py, px), the order of a Conv2d(C, D, P, stride P)
// weight flattened to (D, C·P·P), so the patch embedding is one GEMM against
// timm's patch_embed.proj.weight. Patches are numbered row-major over the grid.
//
// image_to_patches_u8 reads the loader's uint8 batch directly: optional
// bilinear resize (PyTorch's align_corners=False: half-pixel centres, source
// coordinates clamped at 0), normalisation (p/255 − mean[c]) / std[c], and the
// patch reordering, in one pass (computed in double; one image per work item).
// patchify / unpatchify are the float permutation and its inverse (= its
// adjoint): the gradient of a float image input.
#pragma once

#include <cstdint>

namespace vitscale::cpu {

struct PatchGeometry {
  std::int64_t batch = 0;                                                        // B
  std::int64_t channels = 0;                                                     // C
  std::int64_t image_size = 0;                                                   // I: the model's image side
  std::int64_t patch_size = 0;                                                   // P (divides I)
  std::int64_t grid() const { return image_size / patch_size; }                  // I/P
  std::int64_t num_patches() const { return grid() * grid(); }                   // Np
  std::int64_t patch_dim() const { return channels * patch_size * patch_size; }  // C·P·P
};

// patches = patch vectors of normalise(resize(images)).
void image_to_patches_u8(float* patches,              // (B, Np, C·P·P)
                         const std::uint8_t* images,  // (B, C, S, S)
                         std::int64_t source_size,    // S (== I: no resize)
                         const float* mean,           // (C)
                         const float* std_dev,        // (C)
                         const PatchGeometry& geom);

// patches = the patch vectors of float images (a permutation).
void patchify(float* patches,       // (B, Np, C·P·P)
              const float* images,  // (B, C, I, I)
              const PatchGeometry& geom);

// images = the inverse permutation: the gradient of patchify's input.
void unpatchify(float* images,         // (B, C, I, I)
                const float* patches,  // (B, Np, C·P·P)
                const PatchGeometry& geom);

}  // namespace vitscale::cpu
