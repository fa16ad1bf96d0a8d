#include "train/evaluation.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "data/loader.h"

namespace vitscale::train {

EvalSums evaluate_split(ViTModel& model, Backend& backend, const data::Dataset& test, const EvalPass& pass) {
  data::LoaderConfig lc;
  lc.batch_size = pass.batch_size;
  lc.world_size = pass.world_size;
  lc.rank = pass.rank;
  lc.mode = data::LoaderMode::eval;
  lc.shuffle = false;
  lc.num_workers = std::min(pass.workers, 1);
  lc.prefetch_batches = 2;
  lc.allocator = [&backend](std::size_t bytes) { return backend.allocate_host(bytes); };
  lc.num_epochs = 1;
  data::Loader loader(test, lc);
  const int K = model.config().num_classes;
  EvalSums s;
  if (pass.confusion) s.confusion.assign(static_cast<std::size_t>(K) * K, 0.0);
  while (data::BatchLease batch = loader.next()) {
    const int n = batch->size;
    if (n == 0) {  // an empty tail batch of an uneven shard
      model.forward_weights_only();  // ZeRO-3: this rank still takes part in the gathers
      continue;
    }
    model.upload_batch(batch->image_data(), batch->target_data(), n);
    model.forward(1.0f);
    const std::vector<float> logits = model.read_logits();  // (n, K); waits for the device
    const std::vector<float> losses = model.read_losses();
    for (int i = 0; i < n; ++i) {
      const float* row = logits.data() + static_cast<std::size_t>(i) * K;
      const int predicted = static_cast<int>(std::max_element(row, row + K) - row);
      const int label = batch->labels[static_cast<std::size_t>(i)];
      s.correct += predicted == label ? 1.0 : 0.0;
      s.loss += losses[static_cast<std::size_t>(i)];
      if (pass.confusion) s.confusion[static_cast<std::size_t>(label) * K + predicted] += 1.0;
    }
    s.images += n;
  }
  return s;
}

data::LoadOptions dataset_load_options(const TrainConfig& c) {
  data::LoadOptions options;
  options.synthetic.train_count = c.synthetic_train_count;
  options.synthetic.test_count = c.synthetic_test_count;
  options.synthetic.channels = c.synthetic_channels;
  options.synthetic.height = options.synthetic.width = c.synthetic_image_size;
  options.synthetic.num_classes = c.synthetic_classes;
  options.synthetic.seed = c.seed;
  options.synthetic.noise = static_cast<float>(c.synthetic_noise);
  options.image_folder.side = c.image_size > 0 ? c.image_size : data::kImageFolderDefaultSide;
  options.image_folder.channels = c.image_channels;
  options.image_folder.skip_bad_images = c.skip_bad_images;
  return options;
}

namespace {

struct ClassRow {
  std::int64_t images = 0, correct = 0;
};

std::vector<ClassRow> class_rows(const EvalSums& s, std::size_t K) {
  std::vector<ClassRow> rows(K);
  for (std::size_t t = 0; t < K && !s.confusion.empty(); ++t)
    for (std::size_t p = 0; p < K; ++p) {
      rows[t].images += static_cast<std::int64_t>(s.confusion[t * K + p]);
      if (p == t) rows[t].correct = static_cast<std::int64_t>(s.confusion[t * K + p]);
    }
  return rows;
}

}  // namespace

nlohmann::ordered_json eval_report_json(const EvalSums& s, const std::vector<std::string>& names) {
  const std::size_t K = names.size();
  const std::vector<ClassRow> rows = class_rows(s, K);
  nlohmann::ordered_json per_class = nlohmann::ordered_json::array();
  nlohmann::ordered_json matrix = nlohmann::ordered_json::array();
  for (std::size_t t = 0; t < K; ++t) {
    per_class.push_back({{"class", names[t]},
                         {"images", rows[t].images},
                         {"correct", rows[t].correct},
                         {"accuracy", rows[t].images ? static_cast<double>(rows[t].correct) / rows[t].images : 0.0}});
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (std::size_t p = 0; p < K && !s.confusion.empty(); ++p)
      row.push_back(static_cast<std::int64_t>(s.confusion[t * K + p]));
    matrix.push_back(row);
  }
  return {{"images", static_cast<std::int64_t>(s.images)},
          {"test_acc", s.images > 0 ? s.correct / s.images : 0.0},
          {"test_loss", s.images > 0 ? s.loss / s.images : 0.0},
          {"class_names", names},
          {"per_class", per_class},
          {"confusion", matrix},
          {"confusion_layout", "rows: true class, columns: predicted class"}};
}

std::string eval_report_text(const EvalSums& s, const std::vector<std::string>& names) {
  const std::size_t K = names.size();
  const std::vector<ClassRow> rows = class_rows(s, K);
  std::ostringstream o;
  char buf[160];
  std::snprintf(buf, sizeof buf, "test: %lld images, acc %.4f, loss %.4f\n", static_cast<long long>(s.images),
                s.images > 0 ? s.correct / s.images : 0.0, s.images > 0 ? s.loss / s.images : 0.0);
  o << buf;
  std::size_t width = 5;
  for (const auto& n : names) width = std::max(width, n.size());
  for (std::size_t t = 0; t < K; ++t) {
    std::snprintf(buf, sizeof buf, "  %-*s  acc %.4f  (%lld / %lld)\n", static_cast<int>(width), names[t].c_str(),
                  rows[t].images ? static_cast<double>(rows[t].correct) / rows[t].images : 0.0,
                  static_cast<long long>(rows[t].correct), static_cast<long long>(rows[t].images));
    o << buf;
  }
  if (s.confusion.empty()) return o.str();
  o << "confusion (rows: true, columns: predicted, in class order):\n";
  for (std::size_t t = 0; t < K; ++t) {
    std::snprintf(buf, sizeof buf, "  %-*s", static_cast<int>(width), names[t].c_str());
    o << buf;
    for (std::size_t p = 0; p < K; ++p) {
      std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(s.confusion[t * K + p]));
      o << buf;
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace vitscale::train
