// dataset_registry.h — load a dataset by name from a --data-dir, or from the usual places.
//
// Names: "cifar10", "cifar100" (fine labels), "cifar100-coarse", "fashion-mnist",
// "synthetic" (shape from LoadOptions::synthetic), "imagefolder" (torchvision's
// layout under data_dir, image_folder.h; LoadOptions::image_folder). With an empty data_dir the
// usual places are searched, in order:
//   cifar10          ./data/cifar-10-batches-bin, ./cifar-10-batches-bin
//   cifar100(-coarse) ./data/cifar-100-binary, ./cifar-100-binary
//   fashion-mnist    /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist),
//                    ./data/fashion-mnist
// With a data_dir D: D itself, then D/<the folder name above> (so both
// --data-dir ./data and --data-dir ./data/cifar-10-batches-bin work). A
// directory counts when it holds the split's first file; when none does, the
// error lists every path tried and why each failed, and says how to get CIFAR.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/synthetic.h"

namespace vitscale::data {

struct LoadOptions {
  bool check_official_counts = true;  // off only for small hand-made test files
  SyntheticSpec synthetic;            // used when name == "synthetic"
  ImageFolderOptions image_folder;    // used when name == "imagefolder"
};

// Shape of a dataset known without reading it (for planning memory up front);
// an image folder's channels (when 0: the majority), classes and counts are known only once it is read (0).
struct DatasetInfo {
  std::string name;
  int channels = 0, height = 0, width = 0, num_classes = 0;
  std::int64_t train_count = 0, test_count = 0;
};

std::vector<std::string> dataset_names();
bool is_dataset_name(std::string_view name);
// Throws std::runtime_error for an unknown name (listing the known ones).
DatasetInfo dataset_info(std::string_view name, const LoadOptions& options = {});

// The directories load_dataset would try, in order.
std::vector<std::string> candidate_dirs(std::string_view name, const std::string& data_dir);

// Loads `split` of the named dataset. Throws std::runtime_error with a one-line
// message naming the file and the problem (or every directory tried).
Dataset load_dataset(std::string_view name, const std::string& data_dir, Split split, const LoadOptions& options = {});

}  // namespace vitscale::data
