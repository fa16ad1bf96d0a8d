// test_image_folder.cpp — --dataset imagefolder: torchvision's layout written with
// libpng and libjpeg themselves; classes, file order, the cache, bad files,
// channels, normalisation, threads, and the loader over it.
#include <catch2/catch.hpp>
#include <filesystem>

#include "data/dataset_registry.h"
#include "data_test_util.h"
#include "tests/test_skip.h"

#if VITSCALE_HAVE_IMAGE_IO
#include "data/image_file.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "tests/image/image_test_util.h"

using namespace vitscale::data;
using namespace vitscale::data::testing;
using vitscale::testing::encode_png;
using vitscale::testing::tinted_rgb;
using vitscale::testing::write_colour_folder;

namespace {

bool any_note_contains(const Dataset& d, const std::string& text) {
  for (const auto& n : d.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

ImageFolderOptions options_at(int side, int channels = 0, int threads = 2) {
  ImageFolderOptions o;
  o.side = side;
  o.channels = channels;
  o.threads = threads;
  return o;
}

}  // namespace

TEST_CASE("imagefolder: classes are the sorted train folders, files in sorted order, decoded at the model's size",
          "[imagefolder]") {
  TempDir dir;
  write_colour_folder(dir.str(), 4, 2, false);
  write_bytes(dir.file("train/green/README.txt"), {'h', 'i'});
  const Dataset train = load_image_folder(dir.str(), Split::train, options_at(16));
  REQUIRE(train.class_names == std::vector<std::string>{"blue", "empty", "green", "red"});
  CHECK(train.count == 12);
  CHECK(train.channels == 3);
  CHECK(train.height == 16);
  CHECK(train.width == 16);
  CHECK(train.num_classes == 4);
  CHECK(train.source == dir.file("train"));
  // blue 0..3, then green (class 2), then red (class 3): the empty class keeps its index.
  CHECK(train.labels == std::vector<std::int32_t>{0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3});
  // Slot 5 is green/1.jpg (sorted paths), decoded exactly as vit_predict decodes a file.
  const std::vector<std::uint8_t> expect = to_model_input(read_image_file(dir.file("train/green/1.jpg")), 3, 16);
  CHECK(std::vector<std::uint8_t>(train.image(5), train.image(5) + train.image_bytes()) == expect);
  // red's last file sits in a subfolder and is still found, last.
  const std::vector<std::uint8_t> nested = to_model_input(read_image_file(dir.file("train/red/more/3.jpg")), 3, 16);
  CHECK(std::vector<std::uint8_t>(train.image(11), train.image(11) + train.image_bytes()) == nested);
  CHECK(any_note_contains(train, "class 1 'empty' has no images"));
  CHECK(any_note_contains(train, "ignored 1 files"));
  CHECK(any_note_contains(train, "0 of 12 images are grey"));

  // val takes train's classes: blue is missing (noted), indices are train's.
  const Dataset val = load_image_folder(dir.str(), Split::test, options_at(16, 3));
  CHECK(val.class_names == train.class_names);
  CHECK(val.labels == std::vector<std::int32_t>{2, 2, 3, 3});
  CHECK(any_note_contains(val, "imagefolder/val: class 0 'blue' has no images"));
  CHECK(val.source == dir.file("val"));
}

TEST_CASE("imagefolder: the normalisation is the split's mean and std of x / 255", "[imagefolder]") {
  TempDir dir;
  const std::uint8_t a[3] = {255, 0, 51}, b[3] = {0, 0, 102};
  std::filesystem::create_directories(dir.file("train/a"));
  std::filesystem::create_directories(dir.file("train/b"));
  std::filesystem::create_directories(dir.file("val/a"));
  // Flat PNGs (lossless): channel 0 is 1 or 0 (mean 0.5, std 0.5), 1 is 0, 2 is 0.2 or 0.4 (mean 0.3, std 0.1).
  auto flat = [](const std::uint8_t rgb[3]) {
    std::vector<std::uint8_t> p(8 * 8 * 3);
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = rgb[i % 3];
    return encode_png(p, 8, 8, 3);
  };
  write_bytes(dir.file("train/a/x.png"), flat(a));
  write_bytes(dir.file("train/b/y.png"), flat(b));
  write_bytes(dir.file("val/a/x.png"), flat(a));
  const Dataset d = load_image_folder(dir.str(), Split::train, options_at(8));
  REQUIRE(d.normalization.channels == 3);
  CHECK(d.normalization.mean[0] == Approx(0.5f).margin(1e-6));
  CHECK(d.normalization.std[0] == Approx(0.5f).margin(1e-6));
  CHECK(d.normalization.mean[1] == Approx(0.f).margin(1e-6));
  CHECK(d.normalization.std[1] == Approx(1e-3f));  // a flat channel gets the floor, never 0
  CHECK(d.normalization.mean[2] == Approx(0.3f).margin(1e-6));
  CHECK(d.normalization.std[2] == Approx(0.1f).margin(1e-5));
}

TEST_CASE("imagefolder: a bad file is refused with its path, or skipped, counted and listed", "[imagefolder]") {
  TempDir dir;
  write_colour_folder(dir.str(), 3, 1, true);
  write_bytes(dir.file("train/green/notes.png"), {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  expect_error([&] { load_image_folder(dir.str(), Split::train, options_at(8)); },
               {dir.file("train/green/notes.png") + ": not a PNG or JPEG image",
                "2 bad files under " + dir.file("train"), "--skip-bad-images"});
  ImageFolderOptions skip = options_at(8);
  skip.skip_bad_images = true;
  const Dataset d = load_image_folder(dir.str(), Split::train, skip);
  CHECK(d.count == 9);
  CHECK(any_note_contains(d, "skipped 2 bad image files (--skip-bad-images)"));
  CHECK(any_note_contains(d, dir.file("train/red/broken.jpg") + ": bad JPEG"));
  CHECK(any_note_contains(d, dir.file("train/green/notes.png") + ": not a PNG or JPEG"));
  CHECK(d.labels == std::vector<std::int32_t>{0, 0, 0, 2, 2, 2, 3, 3, 3});
}

TEST_CASE("imagefolder: channels follow the model or the majority, grey <-> RGB as vit_predict converts",
          "[imagefolder]") {
  TempDir dir;
  std::filesystem::create_directories(dir.file("train/k"));
  std::filesystem::create_directories(dir.file("val/k"));
  std::vector<std::uint8_t> grey(12 * 12);
  for (std::size_t i = 0; i < grey.size(); ++i) grey[i] = static_cast<std::uint8_t>(i * 7);
  for (const char* name : {"g1.png", "g2.png"})
    write_bytes(dir.file(std::string("train/k/") + name), encode_png(grey, 12, 12, 1));
  const std::uint8_t red[3] = {200, 30, 30};
  write_bytes(dir.file("train/k/z.png"), encode_png(tinted_rgb(12, 12, red), 12, 12, 3));
  write_bytes(dir.file("val/k/z.png"), encode_png(tinted_rgb(12, 12, red), 12, 12, 3));

  const Dataset majority = load_image_folder(dir.str(), Split::train, options_at(6));
  CHECK(majority.channels == 1);
  CHECK(majority.normalization.channels == 1);
  CHECK(any_note_contains(majority, "2 of 3 images are grey: the model takes 1 channel"));
  const auto colour = read_image_file(dir.file("train/k/z.png"));
  CHECK(std::vector<std::uint8_t>(majority.image(2), majority.image(2) + 36) == to_model_input(colour, 1, 6));

  const Dataset rgb = load_image_folder(dir.str(), Split::train, options_at(6, 3));
  CHECK(rgb.channels == 3);
  const std::uint8_t* g = rgb.image(0);  // a grey file replicated to three equal planes
  CHECK(std::equal(g, g + 36, g + 36));
  CHECK(std::equal(g, g + 36, g + 72));
  // The val split with train's channel count, however its own files lean.
  CHECK(load_image_folder(dir.str(), Split::test, options_at(6, 1)).channels == 1);
  CHECK(load_image_folder(dir.str(), Split::test, options_at(6)).channels == 3);
}

TEST_CASE("imagefolder: the cache does not depend on the number of decoding threads", "[imagefolder]") {
  TempDir dir;
  write_colour_folder(dir.str(), 7, 1, false);
  const Dataset one = load_image_folder(dir.str(), Split::train, options_at(12, 0, 1));
  const Dataset three = load_image_folder(dir.str(), Split::train, options_at(12, 0, 3));
  CHECK(one.images == three.images);
  CHECK(one.labels == three.labels);
}

TEST_CASE("imagefolder: layout mistakes are one line naming the folder", "[imagefolder]") {
  TempDir dir;
  expect_error([&] { load_dataset("imagefolder", "", Split::train); }, {"imagefolder needs --data-dir DIR"});
  expect_error([&] { load_image_folder(dir.str(), Split::train, options_at(8)); },
               {dir.file("train") + ": no such directory", "DIR/train/CLASS"});
  std::filesystem::create_directories(dir.file("train"));
  expect_error([&] { load_image_folder(dir.str(), Split::train, options_at(8)); },
               {dir.file("train") + ": no class folders"});
  write_colour_folder(dir.str(), 2, 1, false);
  std::filesystem::create_directories(dir.file("val/zebra"));
  expect_error([&] { load_image_folder(dir.str(), Split::test, options_at(8)); },
               {dir.file("val/zebra") + ": class 'zebra' is not a folder of " + dir.file("train")});
  std::filesystem::remove_all(dir.file("val"));
  expect_error([&] { load_image_folder(dir.str(), Split::test, options_at(8)); },
               {dir.file("val") + ": no such directory"});
  std::filesystem::create_directories(dir.file("val/red"));
  expect_error([&] { load_image_folder(dir.str(), Split::test, options_at(8)); },
               {dir.file("val") + ": no .png, .jpg or .jpeg"});
}

TEST_CASE("imagefolder: through the registry and the distributed loader, with augmentation", "[imagefolder]") {
  TempDir dir;
  write_colour_folder(dir.str(), 6, 2, false);
  LoadOptions options;
  options.image_folder = options_at(8);
  const Dataset train = load_dataset("imagefolder", dir.str(), Split::train, options);
  REQUIRE(train.count == 18);
  CHECK(is_dataset_name("imagefolder"));
  // Two ranks split every epoch: disjoint shares covering 2 x 4 of the 18 images.
  std::vector<std::int64_t> seen;
  for (int rank = 0; rank < 2; ++rank) {
    LoaderConfig lc;
    lc.batch_size = 4;
    lc.world_size = 2;
    lc.rank = rank;
    lc.seed = 3;
    lc.augment.crop_padding = 1;
    lc.augment.horizontal_flip = true;
    lc.num_workers = 1;
    Loader loader(train, lc);
    REQUIRE(loader.steps_per_epoch() == 2);
    for (int s = 0; s < 2; ++s) {
      BatchLease b = loader.next();
      REQUIRE(b);
      for (int i = 0; i < 4; ++i) {
        const std::int64_t index = b->indices[static_cast<std::size_t>(i)];
        CHECK(b->labels[static_cast<std::size_t>(i)] == train.labels[static_cast<std::size_t>(index)]);
        seen.push_back(index);
      }
    }
  }
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  CHECK(seen.size() == 16);
}

#else

TEST_CASE("imagefolder: needs libpng and libjpeg-turbo", "[imagefolder]") {
  VS_SKIP("built without PNG/JPEG support (libpng-dev, libjpeg62-turbo-dev)");
}

#endif
