// evaluation.h — one pass over a test split: accuracy, loss, and the
// confusion matrix; shared by the trainer's per-epoch evaluation and vit_eval,
// so both print the same numbers for the same weights.
//
// Sums are this rank's share (the eval loader's uneven shards, data/sampler.h);
// a data-parallel caller all-reduces them. The loss is the model's per-image
// cross-entropy against the unsmoothed one-hot target.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/dataset_registry.h"
#include "runtime/vit_model.h"
#include "train/train_config.h"

namespace vitscale::train {

struct EvalSums {
  double correct = 0, loss = 0, images = 0;
  std::vector<double> confusion;  // (K, K) row: true class, column: predicted; empty unless asked
};

struct EvalPass {
  int batch_size = 0;  // images per forward (<= the model's micro batch)
  int world_size = 1, rank = 0;
  int workers = 1;
  bool confusion = false;
};

// Runs `model` over `test` (uint8 images at the model's source size).
EvalSums evaluate_split(ViTModel& model, Backend& backend, const data::Dataset& test, const EvalPass& pass);

// The dataset options of a run (the synthetic spec is seeded by the run's seed; an image
// folder is decoded at the model's image size, else data::kImageFolderDefaultSide).
data::LoadOptions dataset_load_options(const TrainConfig& config);

// vit_eval's report: totals, per-class accuracy and the confusion matrix, as JSON.
nlohmann::ordered_json eval_report_json(const EvalSums& sums, const std::vector<std::string>& class_names);
// The same as text lines: totals, then one line per class, then the matrix.
std::string eval_report_text(const EvalSums& sums, const std::vector<std::string>& class_names);

}  // namespace vitscale::train
