// predict_main.cpp — vit_predict: a saved model (checkpoint, or
// model.safetensors with model.json) on PNG and JPEG files: each image
// centre-cropped to a square, resized to the model's input (data/image_file.h),
// normalised as in training; the top-k classes with their softmax
// probabilities, one line per image, class names from the model card.
// A file that is no image, or a truncated one, gets one error line naming it;
// the others are still classified, and the exit status is then 1.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "data/image_file.h"
#include "runtime/vit_model.h"
#include "train/device.h"
#include "train/model_card.h"
#include "train/tool_main.h"

namespace {

using namespace vitscale;
using namespace vitscale::train;

struct PredictArgs {
  std::string model, device = "cpu";
  std::vector<std::string> images;
  int top_k = 5, threads = 0;
  bool json = false;
};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// (K) probabilities from (K) logits, in double.
std::vector<double> softmax(const float* logits, int K) {
  const float top = *std::max_element(logits, logits + K);
  std::vector<double> p(static_cast<std::size_t>(K));
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += p[static_cast<std::size_t>(k)] = std::exp(static_cast<double>(logits[k] - top));
  for (double& v : p) v /= sum;
  return p;
}

int run(const PredictArgs& a) {
  const SavedModel saved = open_saved_model(a.model);
  const ModelCard& card = saved.card;
  TrainConfig bc;
  bc.device = a.device;
  bc.threads = a.threads;
  const auto backend = make_backend(bc);
  const int side = card.vit.image_size, C = card.vit.channels, K = card.vit.num_classes;
  ViTModel model(card.vit, *backend, ModelShape{1, side}, card.norm);
  load_saved_weights(model, saved);
  const int k_shown = std::clamp(a.top_k, 1, K);
  const std::vector<float> targets(static_cast<std::size_t>(K), 0.f);  // the loss is not looked at
  int failures = 0;
  for (const std::string& path : a.images) {
    std::vector<std::uint8_t> input;
    try {
      input = data::to_model_input(data::read_image_file(path), C, side);
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "vit_predict: error: " << one_line(e.what()) << "\n";
      ++failures;
      continue;
    }
    model.upload_batch(input.data(), targets.data(), 1);
    model.forward(1.0f);
    const std::vector<float> logits = model.read_logits();
    const std::vector<double> p = softmax(logits.data(), K);
    std::vector<int> order(static_cast<std::size_t>(K));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return p[x] > p[y]; });
    if (a.json) {
      nlohmann::ordered_json top = nlohmann::ordered_json::array();
      for (int i = 0; i < k_shown; ++i)
        top.push_back({{"class", card.class_names[order[i]]}, {"index", order[i]}, {"probability", p[order[i]]}});
      std::cout << nlohmann::ordered_json{{"image", path}, {"top", top}}.dump() << "\n";
    } else {
      std::cout << path << ":";
      char buf[32];
      for (int i = 0; i < k_shown; ++i) {
        std::snprintf(buf, sizeof buf, "%.4f", p[order[i]]);
        std::cout << (i ? ",  " : "  ") << card.class_names[order[i]] << " " << buf;
      }
      std::cout << "\n";
    }
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  PredictArgs a;
  CLI::App app(
      "vit_predict: classify PNG and JPEG images with a saved model (a checkpoint, a checkpoint directory, "
      "or model.safetensors with model.json beside it)",
      "vit_predict");
  app.add_option("model", a.model, "checkpoint file or directory, or a weights-only .safetensors")->required();
  app.add_option("images", a.images, "PNG or JPEG files")->required();
  app.add_option("-k,--top-k", a.top_k, "classes shown per image (default: 5)");
  app.add_option("--device", a.device, "cpu, cuda or auto (default: cpu)");
  app.add_option("--threads", a.threads, "CPU threads (default: OpenMP's)");
  app.add_flag("--json", a.json, "one JSON object per image instead of text");
  return tool_main(app, argc, argv, [&] { return run(a); });
}
