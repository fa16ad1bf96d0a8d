#include "train/metrics_log.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <ostream>
#include <stdexcept>

namespace vitscale::train {

StepTimes& StepTimes::operator+=(const StepTimes& o) {
  data += o.data, upload += o.upload, forward += o.forward, backward += o.backward, comm += o.comm;
  optimizer += o.optimizer;
  comm_total += o.comm_total;
  return *this;
}

StepTimes StepTimes::scaled(double f) const {
  return {data * f, upload * f, forward * f, backward * f, comm * f, optimizer * f, comm_total * f};
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const auto t = static_cast<long long>(std::llround(s));
  if (t < 60) std::snprintf(buf, sizeof buf, "%llds", t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  return buf;
}

namespace {

constexpr const char* kCsvColumns[] = {"event",     "step",         "epoch",     "loss",     "lr",
                                       "grad_norm", "images_per_s", "elapsed_s", "test_acc", "test_loss"};

}  // namespace

MetricsLog::MetricsLog(std::ostream& console, const std::string& jsonl_path, bool append, bool enabled,
                       const std::string& csv_path)
    : console_(console), enabled_(enabled) {
  if (!enabled_) return;
  if (!jsonl_path.empty()) {
    file_.open(jsonl_path, append ? std::ios::app : std::ios::trunc);
    if (!file_) throw std::runtime_error(jsonl_path + ": cannot open the metrics file: " + std::strerror(errno));
  }
  if (!csv_path.empty()) {
    const std::filesystem::path path(csv_path);
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    const bool has_header = append && std::filesystem::exists(path, ec) && std::filesystem::file_size(path, ec) > 0;
    csv_.open(csv_path, append ? std::ios::app : std::ios::trunc);
    if (!csv_) throw std::runtime_error(csv_path + ": cannot open the csv_monitor file: " + std::strerror(errno));
    if (!has_header) {
      for (std::size_t i = 0; i < std::size(kCsvColumns); ++i) csv_ << (i ? "," : "") << kCsvColumns[i];
      csv_ << '\n' << std::flush;
    }
  }
}

void MetricsLog::write(const nlohmann::ordered_json& record) {
  if (!file_.is_open()) return;
  file_ << record.dump() << '\n';
  file_.flush();
}

void MetricsLog::write_csv(const nlohmann::ordered_json& record) {
  if (!csv_.is_open()) return;
  for (std::size_t i = 0; i < std::size(kCsvColumns); ++i) {
    if (i) csv_ << ',';
    if (!record.contains(kCsvColumns[i])) continue;
    const auto& v = record.at(kCsvColumns[i]);
    csv_ << (v.is_string() ? v.get<std::string>() : v.dump());
  }
  csv_ << '\n';
  csv_.flush();
}

void MetricsLog::train(const TrainRecord& r) {
  if (!enabled_) return;
  char line[256];
  const double pct = r.total_steps > 0 ? 100.0 * static_cast<double>(r.step) / static_cast<double>(r.total_steps) : 0;
  std::snprintf(line, sizeof line,
                "[ep %3d/%d] step %7lld/%lld %5.1f%%  loss %.4f  lr %.2e  |g| %.3f  %7.0f img/s  %s  ETA %s", r.epoch,
                r.epochs, static_cast<long long>(r.step), static_cast<long long>(r.total_steps), pct, r.loss, r.lr,
                r.grad_norm, r.images_per_s, format_duration(r.elapsed_s).c_str(), format_duration(r.eta_s).c_str());
  console_ << line;
  if (r.test_acc) {
    std::snprintf(line, sizeof line, "  acc %.4f best %.4f", *r.test_acc, r.best_test_acc.value_or(*r.test_acc));
    console_ << line;
  }
  console_ << '\n';
  nlohmann::ordered_json j = {{"event", "train"},         {"step", r.step},       {"epoch", r.epoch},
                              {"loss", r.loss},           {"lr", r.lr},           {"grad_norm", r.grad_norm},
                              {"images_per_s", r.images_per_s}, {"elapsed_s", r.elapsed_s}};
  if (r.breakdown) {
    const StepTimes& b = *r.breakdown;
    std::snprintf(line, sizeof line,
                  "           time/step %.1f ms: data wait %.1f  upload %.2f  forward %.1f  backward %.1f  "
                  "comm (exposed) %.1f  optimizer %.1f",
                  1e3 * b.total(), 1e3 * b.data, 1e3 * b.upload, 1e3 * b.forward, 1e3 * b.backward, 1e3 * b.comm,
                  1e3 * b.optimizer);
    console_ << line << '\n';
    if (b.comm_total > 0) {
      std::snprintf(line, sizeof line, "           comm total %.1f ms, exposed %.1f ms, overlap %.0f%%", 1e3 * b.comm_total,
                    1e3 * b.comm, 100.0 * b.overlap());
      console_ << line << '\n';
    }
    j["time_ms"] = {{"data", 1e3 * b.data},
                    {"upload", 1e3 * b.upload},
                    {"forward", 1e3 * b.forward},
                    {"backward", 1e3 * b.backward},
                    {"comm", 1e3 * b.comm},
                    {"comm_total", 1e3 * b.comm_total},
                    {"overlap", b.overlap()},
                    {"optimizer", 1e3 * b.optimizer},
                    {"total", 1e3 * b.total()}};
  }
  console_.flush();
  write(j);
  write_csv(j);
}

void MetricsLog::eval(const EvalRecord& r) {
  if (!enabled_) return;
  char line[260];
  const char* what = eval_split_.c_str();
  std::snprintf(line, sizeof line, "[ep %3d] eval at step %lld: %s_acc %.4f  %s_loss %.4f  (%lld images, %s)", r.epoch,
                static_cast<long long>(r.step), what, r.test_acc, what, r.test_loss, static_cast<long long>(r.images),
                format_duration(r.eval_s).c_str());
  console_ << line;
  if (r.live_acc) {
    std::snprintf(line, sizeof line, "  [EMA weights; live: %s_acc %.4f  %s_loss %.4f]", what, *r.live_acc, what,
                  r.live_loss.value_or(0.0));
    console_ << line;
  }
  console_ << '\n' << std::flush;
  nlohmann::ordered_json j = {{"event", "eval"},        {"epoch", r.epoch},         {"step", r.step},
                              {"test_acc", r.test_acc}, {"test_loss", r.test_loss}, {"images", r.images},
                              {"eval_s", r.eval_s},     {"elapsed_s", r.elapsed_s}};
  if (eval_split_ != "test") j["split"] = eval_split_;
  if (r.live_acc) {
    j["weights"] = "ema";
    j["live_test_acc"] = *r.live_acc;
    j["live_test_loss"] = r.live_loss.value_or(0.0);
  }
  write(j);
  write_csv(j);
}

void MetricsLog::final(const FinalRecord& r) {
  if (!enabled_) return;
  char line[200];
  const char* what = eval_split_.c_str();
  std::snprintf(line, sizeof line, "final: %s_acc=%.4f best=%.4f %s_loss=%.4f images/s=%.0f wall=%.1fs; ", what,
                r.test_acc, r.milestones.best(), what, r.test_loss, r.images_per_s, r.wall_s);
  console_ << line << r.milestones.describe() << '\n' << std::flush;
  nlohmann::ordered_json j = {{"event", "final"},
                              {"test_acc", r.test_acc},
                              {"best_test_acc", r.milestones.best()},
                              {"test_loss", r.test_loss},
                              {"images_per_s", r.images_per_s},
                              {"wall_s", r.wall_s},
                              {"steps", r.steps},
                              {"time_to_acc", r.milestones.time_to_json()}};
  if (eval_split_ != "test") j["split"] = eval_split_;
  write(j);
}

void MetricsLog::event(const std::string& name, const nlohmann::ordered_json& fields) {
  if (!enabled_) return;
  nlohmann::ordered_json j = {{"event", name}};
  for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = *it;
  write(j);
}

void MetricsLog::note(const std::string& line) {
  if (enabled_) console_ << line << '\n' << std::flush;
}

}  // namespace vitscale::train
