// image_folder_train_test.cpp — vit_train on your own images (--dataset imagefolder):
// the program trains on a folder written with libpng and libjpeg (a corrupt
// file skipped, an empty class, a class missing from val), exports a card with
// the folder's class names that vit_eval reads; resume is bit for bit.
#include <catch2/catch.hpp>

#include "tests/test_skip.h"
#include "train_util.h"

#if VITSCALE_HAVE_IMAGE_IO
#include "tests/image/image_test_util.h"
#endif

#ifndef VIT_TRAIN_EXE
#error "VIT_TRAIN_EXE must name the vit_train binary (tests/train/tests.cmake)"
#endif

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

#if VITSCALE_HAVE_IMAGE_IO

namespace {

const std::string kTinyModel =
    " --image-size 16 --patch-size 4 --dim 32 --depth 1 --heads 2 --mlp-dim 64 --device cpu --threads 2"
    " --train-batch-size 6 --loader-workers 1";

}  // namespace

TEST_CASE("vit_train trains on an image folder, skipping a bad file, and exports its class names",
          "[imagefolder][cli]") {
  TempDir dir("imagefolder_cli");
  vitscale::testing::write_colour_folder(dir / "pics", 6, 2, true);
  const std::string common = "--dataset imagefolder --data-dir " + dir / "pics" + kTinyModel;

  // By default the corrupt file ends the run before step 1, naming it.
  const ProgramRun refused = run_program(VIT_TRAIN_EXE, common + " --max-steps 2", dir);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.err, Catch::Contains(dir / "pics/train/red/broken.jpg") && Catch::Contains("--skip-bad-images"));

  const ProgramRun run = run_program(VIT_TRAIN_EXE,
                                     common + " --skip-bad-images --max-steps 6 --crop-padding 1 --export-model " +
                                         dir / "model" + " --metrics-out " + dir / "m.jsonl",
                                     dir);
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Catch::Contains("data: imagefolder/train: 18 x 3x16x16, 4 classes"));
  CHECK_THAT(run.out, Catch::Contains("imagefolder/train: skipped 1 bad image file (--skip-bad-images):"));
  CHECK_THAT(run.out, Catch::Contains(dir / "pics/train/red/broken.jpg: bad JPEG"));
  CHECK_THAT(run.out, Catch::Contains("imagefolder/train: class 1 'empty' has no images"));
  CHECK_THAT(run.out, Catch::Contains("imagefolder/val: class 0 'blue' has no images"));
  const nlohmann::json card = nlohmann::json::parse(slurp(dir / "model/model.json"));
  CHECK(card.at("class_names") == nlohmann::json::array({"blue", "empty", "green", "red"}));
  CHECK(card.at("timm").at("in_chans") == 3);
  CHECK(card.at("timm").at("img_size") == 16);
  CHECK(card.at("timm").at("num_classes") == 4);
  CHECK(card.at("train_config").at("data").at("image_folder").at("channels") == 3);

  // vit_eval finds the folder from the card and evaluates its val split.
  const ProgramRun eval = run_program(VIT_EVAL_EXE, dir / "model" + " --out " + dir / "eval.json", dir);
  INFO(eval.out << eval.err);
  REQUIRE(eval.exit_code == 0);
  const nlohmann::json e = nlohmann::json::parse(slurp(dir / "eval.json"));
  CHECK(e.at("images") == 4);
  const std::vector<nlohmann::json> records = read_jsonl(dir / "m.jsonl");
  const nlohmann::json* fin = find_event(records, "final");
  REQUIRE(fin);
  CHECK(e.at("test_acc").get<double>() == fin->at("test_acc").get<double>());
}

TEST_CASE("an image-folder run resumed halfway gives the uninterrupted run's losses bit for bit",
          "[imagefolder][resume]") {
  TempDir dir("imagefolder_resume");
  vitscale::testing::write_colour_folder(dir / "pics", 8, 2, false);
  nlohmann::json j = tiny_synthetic_config();
  j["data"] = {{"dataset", "imagefolder"},
               {"dir", dir / "pics"},
               {"crop_padding", 1},
               {"hflip", true},
               {"image_folder", {{"channels", 1}}}};  // RGB files to grey, as asked
  j["train_batch_size"] = 8;
  j["training"]["max_steps"] = 6;
  j["training"]["epochs"] = 0;
  j["logging"] = {{"metrics_out", dir / "full.jsonl"}};
  std::string console;
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::finished);
  CHECK_THAT(console, Catch::Contains("imagefolder/train: 24 x 1x16x16"));

  j["logging"] = {{"metrics_out", dir / "half.jsonl"}};
  j["checkpoint"] = {{"save_dir", dir / "ckpt"}};
  j["training"]["stop_at_step"] = 3;
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::paused);
  j["training"].erase("stop_at_step");
  j["checkpoint"]["resume"] = "auto";
  REQUIRE(train_in_process(resolve_json(j), console).outcome == TrainResult::Outcome::finished);
  CHECK_THAT(console, Catch::Contains("resumed from"));
  check_same_losses(dir / "full.jsonl", dir / "half.jsonl", 6);
}

#else

TEST_CASE("vit_train on an image folder needs libpng and libjpeg-turbo", "[imagefolder]") {
  VS_SKIP("built without PNG/JPEG support (libpng-dev, libjpeg62-turbo-dev)");
}

#endif
