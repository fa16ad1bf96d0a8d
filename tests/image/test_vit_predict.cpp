// test_vit_predict.cpp — vit_predict on PNG and JPEG files of a model trained
// and exported here: its probabilities are the model's own on the same pixels,
// class names come from the card, and a bad file is one error line naming it
// while the other images are still classified.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "../train/train_util.h"
#include "data/dataset_registry.h"
#include "image_test_util.h"
#include "runtime/backend.h"
#include "train/evaluation.h"
#include "train/model_card.h"
#include "train/trainer.h"

#ifndef VIT_PREDICT_EXE
#error "VIT_PREDICT_EXE must name the vit_predict binary (tests/image/tests.cmake)"
#endif

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::testing;
using vitscale::train::testing::train_in_process;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// (C, H, W) planar -> (H, W, C) interleaved.
std::vector<std::uint8_t> interleave(const std::uint8_t* planar, int C, int side) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(C) * side * side);
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < side * side; ++i) out[static_cast<std::size_t>(i) * C + c] = planar[c * side * side + i];
  return out;
}

}  // namespace

TEST_CASE("vit_predict gives the model's own top-k probabilities for PNG and JPEG files", "[predict]") {
  const fs::path dir = fs::temp_directory_path() / ("vitscale_predict_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto at = [&](const std::string& n) { return (dir / n).string(); };

  nlohmann::json j = {
      {"train_batch_size", 64},
      {"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 1}, {"heads", 2}, {"mlp_dim", 64}}},
      {"data",
       {{"dataset", "synthetic"}, {"synthetic", {{"train_count", 256}, {"test_count", 64}, {"image_size", 16}}}}},
      {"training", {{"epochs", 1}, {"seed", 5}}},
      {"runtime", {{"device", "cpu"}, {"threads", 1}}},
      {"checkpoint", {{"export_model", at("model")}}},
  };
  const TrainConfig config = resolve(parse_config_json(j, "test"), {});
  std::string console;
  train_in_process(config, console);
  const data::Dataset test = data::load_dataset("synthetic", "", data::Split::test, dataset_load_options(config));
  const int side = 16, C = 3;
  write_bytes(at("a.png"), encode_png(interleave(test.image(0), C, side), side, side, 3));
  write_bytes(at("b.png"), encode_png(interleave(test.image(1), C, side), side, side, 3));
  write_bytes(at("c.jpg"), encode_jpeg(interleave(test.image(2), C, side), side, side, 3));
  std::ofstream(at("notes.png")) << "not an image\n";

  const std::string cmd = std::string(VIT_PREDICT_EXE) + " " + at("model/model.safetensors") + " " + at("a.png") + " " +
                          at("notes.png") + " " + at("b.png") + " " + at("c.jpg") + " --json -k 3 --threads 1 >" +
                          at("out.txt") + " 2>" + at("err.txt");
  const int st = std::system(cmd.c_str());
  const std::string out = slurp(at("out.txt")), err = slurp(at("err.txt"));
  INFO(out << err);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 1);  // one file was bad
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_THAT(err, Catch::StartsWith("vit_predict: error: " + at("notes.png") + ": not a PNG or JPEG image"));

  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 3);
  CHECK(lines[2].at("image") == at("c.jpg"));

  // The PNGs are lossless at the model's size: vit_predict must give exactly
  // what the model gives on the dataset's own pixels.
  auto backend = make_cpu_backend(1);
  const SavedModel saved = open_saved_model(at("model"));
  ViTModel model(saved.card.vit, *backend, ModelShape{1, side}, saved.card.norm);
  load_saved_weights(model, saved);
  const std::vector<float> targets(10, 0.f);
  for (int i = 0; i < 2; ++i) {
    model.upload_batch(test.image(i), targets.data(), 1);
    model.forward(1.f);
    const std::vector<float> logits = model.read_logits();
    double sum = 0;
    const float top = *std::max_element(logits.begin(), logits.end());
    for (float l : logits) sum += std::exp(double(l) - top);
    const auto& best = lines[static_cast<std::size_t>(i)].at("top");
    REQUIRE(best.size() == 3);
    const int k = best[0].at("index").get<int>();
    CHECK(k == std::max_element(logits.begin(), logits.end()) - logits.begin());
    CHECK(best[0].at("class") == saved.card.class_names[static_cast<std::size_t>(k)]);
    CHECK(best[0].at("probability").get<double>() == Approx(std::exp(double(logits[k]) - top) / sum).epsilon(1e-6));
    CHECK(best[0].at("probability").get<double>() >= best[1].at("probability").get<double>());
    CHECK(best[1].at("probability").get<double>() >= best[2].at("probability").get<double>());
  }
  fs::remove_all(dir);
}
