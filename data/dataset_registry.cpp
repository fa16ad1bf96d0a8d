// dataset_registry.cpp — names to loaders, and the directory search with its error message.
#include "data/dataset_registry.h"

#include <stdexcept>

#include "data/cifar.h"
#include "data/fashion_mnist.h"
#include "data/file_io.h"

namespace vitscale::data {

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string unknown_name_message(std::string_view name) {
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  return "unknown dataset '" + std::string(name) + "' (known: " + known + ")";
}

// The folder a dataset's archive unpacks into.
std::string folder_of(std::string_view name) {
  if (name == "cifar10") return "cifar-10-batches-bin";
  if (name == "cifar100" || name == "cifar100-coarse") return "cifar-100-binary";
  return "fashion-mnist";
}

// The file whose presence makes a directory hold `split` of the dataset.
std::vector<std::string> marker_files(std::string_view name, Split split) {
  const bool train = split == Split::train;
  if (name == "cifar10") return {train ? "data_batch_1.bin" : "test_batch.bin"};
  if (name == "cifar100" || name == "cifar100-coarse") return {train ? "train.bin" : "test.bin"};
  const std::string base = fashion_mnist_file(split, true);
  return {base + ".gz", base};
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"cifar10", "cifar100", "cifar100-coarse", "fashion-mnist", "synthetic", "imagefolder"};
}

bool is_dataset_name(std::string_view name) {
  for (const auto& n : dataset_names())
    if (n == name) return true;
  return false;
}

DatasetInfo dataset_info(std::string_view name, const LoadOptions& options) {
  if (name == "cifar10") return {"cifar10", 3, 32, 32, 10, 50000, 10000};
  if (name == "cifar100") return {"cifar100", 3, 32, 32, 100, 50000, 10000};
  if (name == "cifar100-coarse") return {"cifar100-coarse", 3, 32, 32, 20, 50000, 10000};
  if (name == "fashion-mnist") return {"fashion-mnist", 1, 28, 28, 10, 60000, 10000};
  if (name == "synthetic") {
    const SyntheticSpec& s = options.synthetic;
    return {"synthetic", s.channels, s.height, s.width, s.num_classes, s.train_count, s.test_count};
  }
  if (name == "imagefolder") {
    const ImageFolderOptions& f = options.image_folder;
    return {"imagefolder", f.channels, f.side, f.side, 0, 0, 0};
  }
  throw std::runtime_error(unknown_name_message(name));
}

std::vector<std::string> candidate_dirs(std::string_view name, const std::string& data_dir) {
  if (!is_dataset_name(name)) throw std::runtime_error(unknown_name_message(name));
  if (name == "synthetic") return {};
  if (name == "imagefolder") return {data_dir};
  const std::string folder = folder_of(name);
  if (!data_dir.empty()) return {data_dir, join(data_dir, folder)};
  if (name == "fashion-mnist") return {kFashionMnistDebianDir, join("./data", folder)};
  return {join("./data", folder), join(".", folder)};
}

Dataset load_dataset(std::string_view name, const std::string& data_dir, Split split, const LoadOptions& options) {
  if (!is_dataset_name(name)) throw std::runtime_error(unknown_name_message(name));
  if (name == "synthetic") return make_synthetic(options.synthetic, split);
  if (name == "imagefolder") {
#if VITSCALE_HAVE_IMAGE_IO
    return load_image_folder(data_dir, split, options.image_folder);
#else
    throw std::runtime_error(
        "imagefolder: this build reads no PNG or JPEG (install libpng-dev and "
        "libjpeg62-turbo-dev, then rebuild)");
#endif
  }

  std::string tried;
  std::string found;
  const std::vector<std::string> markers = marker_files(name, split);
  for (const auto& dir : candidate_dirs(name, data_dir)) {
    std::string why;
    if (!is_directory(dir)) {
      why = "no such directory";
    } else {
      for (const auto& m : markers)
        if (is_regular_file(join(dir, m))) found = dir;
      if (found.empty()) why = "no " + markers.front();
    }
    if (!found.empty()) break;
    tried += (tried.empty() ? "" : "; ") + dir + " (" + why + ")";
  }
  if (found.empty()) {
    std::string hint;
    if (name != "fashion-mnist")
      hint = "; fetch it with tools/get_cifar.sh [DEST] where the internet is reachable, then pass --data-dir DEST";
    else
      hint = "; install Debian's dataset-fashion-mnist package or pass --data-dir";
    throw std::runtime_error(std::string(name) + "/" + split_name(split) + ": dataset not found; looked in " + tried +
                             hint);
  }
  if (name == "cifar10") return load_cifar10(found, split, options.check_official_counts);
  if (name == "cifar100") return load_cifar100(found, split, Cifar100Labels::fine, options.check_official_counts);
  if (name == "cifar100-coarse")
    return load_cifar100(found, split, Cifar100Labels::coarse, options.check_official_counts);
  return load_fashion_mnist(found, split, options.check_official_counts);
}

}  // namespace vitscale::data
