// eval_main.cpp — vit_eval: a saved model (checkpoint, or model.safetensors
// with its model.json) on its dataset's test split: test accuracy and loss
// (the same numbers training printed for these weights: the same evaluation
// code, batch size and dataset), per-class accuracy and the confusion matrix,
// printed and written as JSON. Single process. Errors: one line, exit 1.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <string>

#include "data/dataset_registry.h"
#include "runtime/safetensors.h"
#include "train/device.h"
#include "train/evaluation.h"
#include "train/model_card.h"
#include "train/tool_main.h"

namespace {

using namespace vitscale;
using namespace vitscale::train;

struct EvalArgs {
  std::string model, data_dir, device, out;
  int threads = -1, eval_batch_size = 0;
};

// The run's config from the card, with this command's overrides. The world
// size of the run that trained it does not matter here: its global batch is dropped.
TrainConfig eval_config(const SavedModel& saved, const EvalArgs& a) {
  if (saved.card.train_config.is_null())
    throw std::runtime_error(saved.path + ": the model card has no train_config: which dataset is unknown");
  nlohmann::json j = nlohmann::json::parse(saved.card.train_config.dump());
  j.erase("train_batch_size");
  TrainOptions flags;
  if (!a.data_dir.empty()) flags.data_dir = a.data_dir;
  if (!a.device.empty()) flags.device = a.device;
  if (a.threads >= 0) flags.threads = a.threads;
  if (a.eval_batch_size > 0) flags.eval_batch_size = a.eval_batch_size;
  TrainConfig c = resolve(parse_config_json(j, saved.path + " (its train_config)"), flags, 1);
  if (c.eval_batch_size == 0) c.eval_batch_size = c.micro_batch_size;
  return c;
}

int run(const EvalArgs& a) {
  const SavedModel saved = open_saved_model(a.model);
  const ModelCard& card = saved.card;
  const TrainConfig c = eval_config(saved, a);
  const data::Dataset test = data::load_dataset(c.dataset, c.data_dir, data::Split::test, dataset_load_options(c));
  if (test.channels != card.vit.channels || test.num_classes != card.vit.num_classes ||
      test.height != card.source_image_size)
    throw std::runtime_error(test.describe() + " does not fit " + saved.path + " (" + card.vit.describe() +
                             " trained on " + std::to_string(card.source_image_size) + "-pixel images)");
  const auto backend = make_backend(c);
  ViTModel model(card.vit, *backend, ModelShape{c.eval_batch_size, test.height}, card.norm);
  load_saved_weights(model, saved);
  EvalPass pass;
  pass.batch_size = c.eval_batch_size;
  pass.confusion = true;
  const EvalSums sums = evaluate_split(model, *backend, test, pass);

  std::cout << "vit_eval: " << saved.path << " ("
            << (saved.average      ? "checkpoint, its weight average"
                : saved.checkpoint ? "checkpoint"
                                   : "weights")
            << ", " << card.vit.describe() << ") on " << test.describe() << ", " << backend->name() << "\n"
            << eval_report_text(sums, card.class_names);
  nlohmann::ordered_json report = {{"model", saved.path}, {"dataset", test.name}, {"data_source", test.source}};
  if (saved.average) report["weights"] = "ema";
  const nlohmann::ordered_json results = eval_report_json(sums, card.class_names);
  for (const auto& [k, v] : results.items()) report[k] = v;
  const std::string out =
      a.out.empty() ? std::filesystem::path(saved.path).replace_extension(".eval.json").string() : a.out;
  write_file_atomically(out, report.dump(2) + "\n");
  std::cout << "report: " << out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  EvalArgs a;
  CLI::App app(
      "vit_eval: evaluate a saved model (a checkpoint, a checkpoint directory, or model.safetensors with "
      "model.json beside it) on its dataset's test split",
      "vit_eval");
  app.add_option("model", a.model, "checkpoint file or directory, or a weights-only .safetensors")->required();
  app.add_option("--data-dir", a.data_dir, "where the dataset is (default: as trained)");
  app.add_option("--device", a.device, "cpu, cuda or auto (default: as trained)");
  app.add_option("--threads", a.threads, "CPU threads (default: as trained)");
  app.add_option("--eval-batch-size", a.eval_batch_size, "images per forward (default: as trained)");
  app.add_option("--out", a.out, "the JSON report (default: beside the model, <name>.eval.json)");
  return tool_main(app, argc, argv, [&] { return run(a); });
}
