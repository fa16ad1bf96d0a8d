// model_card.h — a trained model as it leaves vit_train, and as vit_eval and
// vit_predict read it back.
//
// --export-model DIR writes two files:
//   DIR/model.safetensors  the weights only, under timm's names (no optimizer
//                          state): timm.models.vision_transformer.VisionTransformer
//                          loads it with load_state_dict as it is;
//   DIR/model.json         the model card: "timm" holds exactly the keyword
//                          arguments of timm's VisionTransformer that rebuild
//                          the model (img_size, patch_size, in_chans, embed_dim,
//                          depth, num_heads, mlp_ratio, global_pool,
//                          class_token, fc_norm, qkv_bias, num_classes), beside
//                          it layer_norm_eps (1e-6, timm's own default),
//                          mlp_dim, class_names, the input normalisation, the
//                          training images' side, the result and the run's
//                          config (TrainConfig::to_json()).
// Every checkpoint carries the same card in its metadata ("model_card"), so a
// checkpoint is self-describing too.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/vit_config.h"

namespace vitscale {
class ViTModel;
}

namespace vitscale::train {

struct ModelCard {
  ViTConfig vit;
  ImageNorm norm;
  std::vector<std::string> class_names;  // (K)
  int source_image_size = 0;             // the side of the images it was trained on (resized to vit.image_size)
  nlohmann::ordered_json train_config;   // TrainConfig::to_json() of the run
  nlohmann::ordered_json result;         // {"step", "test_acc", "test_loss"} when known
};

inline constexpr double kLayerNormEps = 1e-6;  // the backends' and timm's ViT

nlohmann::ordered_json model_card_json(const ModelCard& card);
// Throws std::runtime_error naming `what` and the missing or bad key.
ModelCard parse_model_card(const nlohmann::json& j, const std::string& what);

// The card beside a weights file: model.safetensors -> model.json.
std::string card_path_for(const std::string& weights_path);

struct ExportedModel {
  std::string weights, card;  // the paths written
};
// Writes DIR/model.safetensors and DIR/model.json (atomically, DIR created).
ExportedModel export_model(const ViTModel& model, const ModelCard& card, const std::string& dir);

// A saved model: a checkpoint (file, or directory with `latest`) or a
// weights-only file with its card beside it.
struct SavedModel {
  std::string path;  // the weights file read
  bool checkpoint = false;
  // A checkpoint of an --ema-decay run: its weight average (ema.*) is what is
  // loaded, the model the run evaluated, reported (card.result) and exported.
  bool average = false;
  ModelCard card;
};
// Reads the card (not yet the weights). Throws one line naming the file.
SavedModel open_saved_model(const std::string& path_or_dir);
// Loads the weights of `saved` into `model` (built from saved.card.vit).
void load_saved_weights(ViTModel& model, const SavedModel& saved);

}  // namespace vitscale::train
