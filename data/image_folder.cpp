// image_folder.cpp — torchvision's ImageFolder layout: the file list, decoding on
// worker threads into the uint8 cache, bad files, the split's normalisation.
#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "data/image_file.h"

namespace vitscale::data {

namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> sorted_subfolders(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec)) names.push_back(e.path().filename().string());
  if (ec) throw std::runtime_error(dir + ": cannot list (" + ec.message() + ")");
  std::sort(names.begin(), names.end());
  return names;
}

struct FileList {
  std::vector<std::string> paths;    // sorted within each class, classes in index order
  std::vector<std::int32_t> labels;  // (N)
  std::vector<std::int64_t> per_class;
  std::int64_t ignored = 0;  // files that are not .png/.jpg/.jpeg
};

FileList list_files(const std::string& split_dir, const std::vector<std::string>& classes) {
  FileList list;
  list.per_class.assign(classes.size(), 0);
  for (std::size_t k = 0; k < classes.size(); ++k) {
    const fs::path class_dir = fs::path(split_dir) / classes[k];
    std::error_code ec;
    if (!fs::is_directory(class_dir, ec)) continue;
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(class_dir, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      if (has_image_extension(it->path()))
        found.push_back(it->path().string());
      else
        ++list.ignored;
    }
    if (ec) throw std::runtime_error(class_dir.string() + ": cannot list (" + ec.message() + ")");
    std::sort(found.begin(), found.end());
    list.per_class[k] = static_cast<std::int64_t>(found.size());
    for (auto& p : found) {
      list.paths.push_back(std::move(p));
      list.labels.push_back(static_cast<std::int32_t>(k));
    }
  }
  return list;
}

bool is_grey(const RgbImage& image) {
  for (std::size_t i = 0; i + 2 < image.pixels.size(); i += 3)
    if (image.pixels[i] != image.pixels[i + 1] || image.pixels[i] != image.pixels[i + 2]) return false;
  return true;
}

// What decoding file i gave: its (C, side, side) bytes in the cache, or why it failed.
struct Decoded {
  std::vector<std::uint8_t> cache;  // (N, C, side, side), C = decode_channels
  std::vector<std::string> errors;  // (N), "" when the file decoded
  std::vector<std::uint8_t> grey;   // (N), 1 when R == G == B everywhere
};

// Decodes every file on `threads` threads, each taking the next file index:
// slot i holds file i whatever the thread count or timing.
Decoded decode_all(const FileList& list, int decode_channels, const ImageFolderOptions& o, const std::string& who) {
  const std::size_t n = list.paths.size();
  const std::size_t bytes = static_cast<std::size_t>(decode_channels) * o.side * o.side;
  Decoded d;
  d.cache.assign(n * bytes, 0);
  d.errors.assign(n, "");
  d.grey.assign(n, 0);
  std::atomic<std::size_t> next{0}, done{0};
  auto work = [&] {
    for (std::size_t i = next++; i < n; i = next++) {
      try {
        const RgbImage image = read_image_file(list.paths[i]);
        d.grey[i] = is_grey(image) ? 1 : 0;
        const std::vector<std::uint8_t> input = to_model_input(image, decode_channels, o.side);
        std::copy(input.begin(), input.end(), d.cache.begin() + static_cast<std::ptrdiff_t>(i * bytes));
      } catch (const std::exception& e) {
        d.errors[i] = e.what();
        if (d.errors[i].empty()) d.errors[i] = list.paths[i] + ": decoding failed";
      }
      ++done;
    }
  };
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::clamp(o.threads > 0 ? o.threads : std::min(hw, 16), 1, 64);
  {
    std::vector<std::jthread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work);
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    while (done.load() < n) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const auto now = std::chrono::steady_clock::now();
      if (o.progress && n >= 1000 && now - last >= std::chrono::seconds(2)) {
        last = now;
        const double s = std::chrono::duration<double>(now - t0).count();
        o.progress(who + ": decoded " + std::to_string(done.load()) + " of " + std::to_string(n) + " images (" +
                   std::to_string(static_cast<int>(s)) + " s, " + std::to_string(threads) + " threads)");
      }
    }
  }  // joined
  return d;
}

// Per-channel mean and std of x / 255 over the cache (N, C, H, W), from exact integer sums.
Normalization split_normalization(const Dataset& d) {
  Normalization n;
  n.channels = d.channels;
  const std::size_t plane = static_cast<std::size_t>(d.height) * d.width;
  for (int c = 0; c < d.channels; ++c) {
    std::uint64_t sum = 0, sum_sq = 0;
    for (std::int64_t i = 0; i < d.count; ++i) {
      const std::uint8_t* p = d.image(i) + c * plane;
      for (std::size_t j = 0; j < plane; ++j) sum += p[j], sum_sq += std::uint64_t{p[j]} * p[j];
    }
    const double count = static_cast<double>(plane) * static_cast<double>(d.count) * 255.0;
    const double mean = static_cast<double>(sum) / count;
    const double var = static_cast<double>(sum_sq) / (count * 255.0) - mean * mean;
    n.mean[c] = static_cast<float>(mean);
    n.std[c] = static_cast<float>(std::max(std::sqrt(std::max(var, 0.0)), 1e-3));  // a flat set must not divide by 0
  }
  for (int c = d.channels; c < 3; ++c) n.mean[c] = 0.f, n.std[c] = 1.f;
  return n;
}

}  // namespace

std::string image_folder_split_dir(const std::string& dir, Split split) {
  return (fs::path(dir) / (split == Split::train ? "train" : "val")).string();
}

std::vector<std::string> image_folder_classes(const std::string& dir) {
  const std::string train_dir = image_folder_split_dir(dir, Split::train);
  std::error_code ec;
  if (!fs::is_directory(train_dir, ec))
    throw std::runtime_error(train_dir +
                             ": no such directory (imagefolder wants DIR/train/CLASS/*.jpg and "
                             "DIR/val/CLASS/*.jpg, CLASS one folder per class)");
  std::vector<std::string> classes = sorted_subfolders(train_dir);
  if (classes.empty())
    throw std::runtime_error(train_dir + ": no class folders (imagefolder wants DIR/train/CLASS/*.jpg)");
  return classes;
}

Dataset load_image_folder(const std::string& dir, Split split, const ImageFolderOptions& o) {
  if (dir.empty())
    throw std::runtime_error("imagefolder needs --data-dir DIR (DIR/train/CLASS/*.jpg, DIR/val/CLASS/*.jpg)");
  if (o.side < 1 || o.side > 4096) throw std::runtime_error("imagefolder: image side " + std::to_string(o.side));
  if (o.channels != 0 && o.channels != 1 && o.channels != 3)
    throw std::runtime_error("imagefolder: channels must be 1, 3 or 0 (the majority), got " +
                             std::to_string(o.channels));
  const std::vector<std::string> classes = image_folder_classes(dir);
  const std::string split_dir = image_folder_split_dir(dir, split);
  const std::string who = std::string("imagefolder/") + (split == Split::train ? "train" : "val");
  std::error_code ec;
  if (!fs::is_directory(split_dir, ec))
    throw std::runtime_error(split_dir +
                             ": no such directory (imagefolder wants DIR/val/CLASS/*.jpg beside DIR/train)");
  if (split == Split::test)
    for (const std::string& name : sorted_subfolders(split_dir))
      if (!std::binary_search(classes.begin(), classes.end(), name))
        throw std::runtime_error((fs::path(split_dir) / name).string() + ": class '" + name + "' is not a folder of " +
                                 image_folder_split_dir(dir, Split::train));

  const FileList list = list_files(split_dir, classes);
  if (list.paths.empty())
    throw std::runtime_error(split_dir + ": no .png, .jpg or .jpeg files under its class folders");
  const int decode_channels = o.channels == 1 ? 1 : 3;
  Decoded decoded = decode_all(list, decode_channels, o, who);

  std::vector<std::size_t> bad;
  for (std::size_t i = 0; i < list.paths.size(); ++i)
    if (!decoded.errors[i].empty()) bad.push_back(i);
  if (!bad.empty() && !o.skip_bad_images)
    throw std::runtime_error(decoded.errors[bad.front()] + " (" + std::to_string(bad.size()) + " bad file" +
                             (bad.size() == 1 ? "" : "s") + " under " + split_dir +
                             "; --skip-bad-images leaves them out)");

  Dataset d;
  d.name = "imagefolder";
  d.source = split_dir;
  d.split = split;
  d.height = d.width = o.side;
  d.num_classes = static_cast<int>(classes.size());
  d.class_names = classes;
  const std::size_t in_bytes = static_cast<std::size_t>(decode_channels) * o.side * o.side;
  std::size_t grey = 0;
  std::vector<std::size_t> good;
  for (std::size_t i = 0; i < list.paths.size(); ++i)
    if (decoded.errors[i].empty()) good.push_back(i), grey += decoded.grey[i];
  if (good.empty())
    throw std::runtime_error(split_dir + ": not one of its " + std::to_string(bad.size()) +
                             " image files decoded (first: " + decoded.errors[bad.front()] + ")");
  d.channels = o.channels != 0 ? o.channels : (2 * grey > good.size() ? 1 : 3);
  d.count = static_cast<std::int64_t>(good.size());
  const std::size_t plane = static_cast<std::size_t>(o.side) * o.side;
  d.images.resize(good.size() * d.image_bytes());  // (N, C, side, side)
  for (std::size_t j = 0; j < good.size(); ++j) {
    const std::uint8_t* src = decoded.cache.data() + good[j] * in_bytes;
    std::uint8_t* dst = d.images.data() + j * d.image_bytes();
    if (d.channels == decode_channels) {
      std::copy_n(src, in_bytes, dst);
    } else {  // the majority is grey: RGB planes to luma, as to_model_input(image, 1, side) gives
      for (std::size_t p = 0; p < plane; ++p) dst[p] = luma(src[p], src[plane + p], src[2 * plane + p]);
    }
    d.labels.push_back(list.labels[good[j]]);
  }
  decoded.cache = {};
  d.normalization = split_normalization(d);

  if (o.channels == 0)
    d.notes.push_back(who + ": " + std::to_string(grey) + " of " + std::to_string(good.size()) +
                      " images are grey: the model takes " + (d.channels == 1 ? "1 channel" : "3 channels (RGB)") +
                      " (--image-channels to choose)");
  if (!bad.empty()) {
    d.notes.push_back(who + ": skipped " + std::to_string(bad.size()) + " bad image file" +
                      (bad.size() == 1 ? "" : "s") + " (--skip-bad-images):");
    for (std::size_t i : bad) d.notes.push_back("  " + decoded.errors[i]);
  }
  for (std::size_t k = 0; k < classes.size(); ++k)
    if (list.per_class[k] == 0)
      d.notes.push_back(who + ": class " + std::to_string(k) + " '" + classes[k] + "' has no images");
  if (list.ignored > 0)
    d.notes.push_back(who + ": ignored " + std::to_string(list.ignored) + " files that are not .png, .jpg or .jpeg");
  validate(d);
  return d;
}

}  // namespace vitscale::data
