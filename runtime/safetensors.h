// safetensors.h — reading and writing the safetensors format, and the model's
// weights in it under timm's parameter names.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}), then the raw little-endian tensor bytes.
// Writes are atomic: a temporary file in the same directory, fsync, rename.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vitscale {

class ParamTable;
class ViTModel;

struct NamedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // F32 (BF16/F16 files are widened on read)
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // in file order
  std::map<std::string, std::string> metadata;

  const NamedTensor* find(const std::string& name) const;
};

// "(1,197,768)", for messages.
std::string shape_str(const std::vector<std::int64_t>& shape);

// Throws std::runtime_error naming the file and the problem (truncated file,
// bad header, offsets out of range or overlapping, unsupported dtype).
SafetensorsFile read_safetensors(const std::string& path);
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of
// the directory). A crash leaves either the old file or the new one.
void write_file_atomically(const std::string& path, const std::string& bytes);

// The model's parameters under timm names.
void save_weights(const ViTModel& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});
// A training checkpoint's tensors beside the weights (train/checkpoint.h):
// "optimizer.*" (AdamW's moments), "ema.*" (the weight average) and "state.*".
// Loaders of weights skip them; any other unknown tensor is a mistake.
bool is_training_state(const std::string& tensor_name);
// The prefix of a checkpoint's weight average (--ema-decay): "ema.<name>".
inline constexpr const char* kWeightAveragePrefix = "ema.";
// Whether `file` holds a weight average of `table`'s model (its first parameter under the prefix).
bool has_weight_average(const SafetensorsFile& file, const ParamTable& table);
// The flat parameters (`table`'s layout) from `file`, each under `prefix` + its
// timm name. Every parameter must be present with its timm shape; anything
// missing, mis-shaped or unknown (training state aside) is refused with one
// line naming it, `what` (the file) and `model_description` (ViTConfig::describe).
std::vector<float> read_flat_params(const SafetensorsFile& file, const ParamTable& table, const std::string& what,
                                    const std::string& model_description, const std::string& prefix = "");
// The same into the model.
void load_weights(ViTModel& model, const std::string& path);
// The same, from an already-read file; `prefix` kWeightAveragePrefix loads a
// checkpoint's weight average instead of its weights.
void load_weights(ViTModel& model, const SafetensorsFile& file, const std::string& what,
                  const std::string& prefix = "");

}  // namespace vitscale
