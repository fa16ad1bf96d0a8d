// image_folder.h — torchvision's ImageFolder layout as a dataset: your own pictures.
//
//   DIR/train/CLASS/**/*.{png,jpg,jpeg}   the training split
//   DIR/val/CLASS/**/*.{png,jpg,jpeg}     the test split (Split::test)
//
// The classes are the folders of DIR/train, indexed in sorted (byte) order, as
// torchvision's find_classes does; a val folder that train lacks is refused, a
// train class val lacks (or one with no images at all) is kept and noted. Files
// are taken in sorted path order, recursively; names are matched without
// regard to case, other files are counted and ignored.
//
// Every file is decoded once, on worker threads (image_file.h: centre square
// crop, antialiased resize to `side`, grey <-> RGB), into the uint8 cache
// (N, C, side, side) the loader trains from. The result depends on neither the
// thread count nor timing: image i goes to slot i. A bad file (not a PNG or
// JPEG, truncated, corrupt) is refused with its path, or with skip_bad_images
// dropped, counted and listed in Dataset::notes. The normalisation is the
// split's own per-channel mean and std of x / 255 (the model takes train's).
//
// Built only with libpng and libjpeg-turbo (VITSCALE_HAVE_IMAGE_IO).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace vitscale::data {

// The side images are decoded at when the model's preset names no image size.
constexpr int kImageFolderDefaultSide = 32;

struct ImageFolderOptions {
  int side = kImageFolderDefaultSide;  // every image becomes side x side (the model's image size)
  int channels = 0;  // 1 (grey) or 3 (RGB); 0: the split's majority (grey when more than half the files are grey)
  bool skip_bad_images = false;  // false: the first bad file is an error; true: dropped and listed in notes
  int threads = 0;               // decoding threads; 0: the hardware's (at most 16)
  // Receives a progress line every few seconds while a large folder (1000+ files) decodes.
  std::function<void(const std::string&)> progress;
};

// The folder a split reads: DIR/train or DIR/val.
std::string image_folder_split_dir(const std::string& dir, Split split);

// The sorted class folders of DIR/train. Throws naming the folder when there is none.
std::vector<std::string> image_folder_classes(const std::string& dir);

// Loads a split. Throws std::runtime_error with one line naming the file or folder.
Dataset load_image_folder(const std::string& dir, Split split, const ImageFolderOptions& options);

}  // namespace vitscale::data
