#include "train/model_card.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "runtime/safetensors.h"
#include "runtime/vit_model.h"
#include "train/checkpoint.h"

namespace vitscale::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCardFormat = "vitscale-model-1";
constexpr const char* kCardKey = "model_card";  // in checkpoint and weights metadata

}  // namespace

nlohmann::ordered_json model_card_json(const ModelCard& c) {
  const ViTConfig& v = c.vit;
  const bool cls = v.has_cls_token();
  nlohmann::ordered_json timm = {
      {"img_size", v.image_size},
      {"patch_size", v.patch_size},
      {"in_chans", v.channels},
      {"num_classes", v.num_classes},
      {"global_pool", cls ? "token" : "avg"},
      {"embed_dim", v.dim},
      {"depth", v.depth},
      {"num_heads", v.heads},
      {"mlp_ratio", static_cast<double>(v.mlp_dim) / v.dim},
      {"qkv_bias", true},
      {"class_token", cls},
      // 'avg' pools first and normalises after (timm's fc_norm); 'token' normalises every token (norm).
      {"fc_norm", !cls},
  };
  nlohmann::ordered_json mean = nlohmann::ordered_json::array(), std = nlohmann::ordered_json::array();
  for (int i = 0; i < c.norm.channels; ++i) mean.push_back(c.norm.mean[i]), std.push_back(c.norm.std[i]);
  nlohmann::ordered_json j = {{"format", kCardFormat},
                              {"timm", timm},
                              {"layer_norm_eps", kLayerNormEps},
                              {"mlp_dim", v.mlp_dim},
                              {"act_layer", "gelu (exact, erf)"},
                              {"class_names", c.class_names},
                              {"normalization", {{"mean", mean}, {"std", std}}},
                              {"source_image_size", c.source_image_size}};
  if (!c.result.is_null()) j["result"] = c.result;
  if (!c.train_config.is_null()) j["train_config"] = c.train_config;
  return j;
}

ModelCard parse_model_card(const nlohmann::json& j, const std::string& what) {
  ModelCard c;
  try {
    if (!j.is_object() || j.value("format", "") != kCardFormat)
      throw std::runtime_error(std::string("not a vitscale model card (format is not '") + kCardFormat + "')");
    const nlohmann::json& t = j.at("timm");
    ViTConfig& v = c.vit;
    v.image_size = t.at("img_size").get<int>();
    v.patch_size = t.at("patch_size").get<int>();
    v.channels = t.at("in_chans").get<int>();
    v.num_classes = t.at("num_classes").get<int>();
    v.dim = t.at("embed_dim").get<int>();
    v.depth = t.at("depth").get<int>();
    v.heads = t.at("num_heads").get<int>();
    v.mlp_dim = j.at("mlp_dim").get<int>();
    const std::string pool = t.at("global_pool").get<std::string>();
    if (pool != "token" && pool != "avg")
      throw std::runtime_error("timm.global_pool '" + pool + "' is not token or avg");
    v.pooling = pool == "token" ? Pooling::cls_token : Pooling::mean;
    v.validate();
    const auto& mean = j.at("normalization").at("mean");
    const auto& std = j.at("normalization").at("std");
    if (mean.size() != static_cast<std::size_t>(v.channels) || std.size() != mean.size())
      throw std::runtime_error("normalization has " + std::to_string(mean.size()) + " means for " +
                               std::to_string(v.channels) + " channels");
    c.norm.channels = v.channels;
    for (int i = 0; i < v.channels; ++i)
      c.norm.mean[i] = mean.at(i).get<float>(), c.norm.std[i] = std.at(i).get<float>();
    c.class_names = j.at("class_names").get<std::vector<std::string>>();
    if (c.class_names.size() != static_cast<std::size_t>(v.num_classes))
      throw std::runtime_error("class_names has " + std::to_string(c.class_names.size()) + " names for " +
                               std::to_string(v.num_classes) + " classes");
    c.source_image_size = j.value("source_image_size", v.image_size);
    if (j.contains("train_config")) c.train_config = j.at("train_config");
    if (j.contains("result")) c.result = j.at("result");
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": bad model card: " + e.what());
  }
  return c;
}

std::string card_path_for(const std::string& weights_path) {
  return fs::path(weights_path).replace_extension(".json").string();
}

ExportedModel export_model(const ViTModel& model, const ModelCard& card, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::runtime_error(dir + ": cannot create the model directory: " + ec.message());
  ExportedModel out{(fs::path(dir) / "model.safetensors").string(), (fs::path(dir) / "model.json").string()};
  save_weights(model, out.weights);
  write_file_atomically(out.card, model_card_json(card).dump(2) + "\n");
  return out;
}

SavedModel open_saved_model(const std::string& path_or_dir) {
  SavedModel s;
  std::error_code ec;
  s.path = path_or_dir;
  if (fs::is_directory(path_or_dir, ec))  // an export directory, else a checkpoint directory
    s.path = fs::exists(fs::path(path_or_dir) / "model.safetensors", ec)
                 ? (fs::path(path_or_dir) / "model.safetensors").string()
                 : resolve_resume_path(path_or_dir);
  if (!fs::is_regular_file(s.path, ec)) throw std::runtime_error(s.path + ": no such model file");
  // Only the header is needed here, but files are small next to the dataset: read it whole.
  const SafetensorsFile f = read_safetensors(s.path);
  s.checkpoint = f.metadata.count("vitscale_checkpoint") > 0;
  if (s.checkpoint) {
    const auto it = f.metadata.find(kCardKey);
    if (it == f.metadata.end())
      throw std::runtime_error(s.path +
                               ": checkpoint has no model card (written before vitscale kept one); "
                               "retrain, or export with --export-model");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error(s.path + ": checkpoint metadata 'model_card' is not valid JSON");
    }
    s.card = parse_model_card(j, s.path);
    s.average = has_weight_average(f, ParamTable(s.card.vit));
    return s;
  }
  const std::string card = card_path_for(s.path);
  if (!fs::is_regular_file(card, ec))
    throw std::runtime_error(s.path + ": no model card beside it (" + card + " is missing)");
  nlohmann::json j;
  try {
    std::ifstream in(card);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(card + ": not valid JSON: " + e.what());
  }
  s.card = parse_model_card(j, card);
  return s;
}

void load_saved_weights(ViTModel& model, const SavedModel& saved) {
  const SafetensorsFile f = read_safetensors(saved.path);
  if (saved.checkpoint) {
    const auto it = f.metadata.find("checksum");
    const std::string actual = checkpoint_checksum(f);
    if (it == f.metadata.end() || it->second != actual)
      throw std::runtime_error(saved.path + ": checksum mismatch (computed " + actual + "): the file is corrupted");
  }
  // A checkpoint's optimizer.* tensors are skipped, and so are its live weights
  // when it has a weight average (the run's reported model).
  load_weights(model, f, saved.path, saved.average ? kWeightAveragePrefix : "");
}

}  // namespace vitscale::train
