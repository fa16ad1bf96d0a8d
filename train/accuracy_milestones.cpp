#include "train/accuracy_milestones.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace vitscale::train {

AccuracyMilestones::AccuracyMilestones(std::vector<double> thresholds)
    : thresholds_(std::move(thresholds)), reached_at_(thresholds_.size()) {
  for (double t : thresholds_)
    if (!(t > 0 && t <= 1))
      throw std::invalid_argument("AccuracyMilestones: threshold " + std::to_string(t) + " is not in (0, 1]");
}

void AccuracyMilestones::record(double accuracy, double seconds) {
  last_ = accuracy;
  best_ = evaluations_ == 0 ? accuracy : std::max(best_, accuracy);
  ++evaluations_;
  for (std::size_t i = 0; i < thresholds_.size(); ++i)
    if (!reached_at_[i] && accuracy >= thresholds_[i]) reached_at_[i] = seconds;
}

std::string AccuracyMilestones::threshold_key(double threshold) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", threshold);
  return buf;
}

std::string AccuracyMilestones::describe() const {
  std::string out = "time to ";
  char buf[64];
  for (std::size_t i = 0; i < thresholds_.size(); ++i) {
    if (reached_at_[i])
      std::snprintf(buf, sizeof buf, "%s%g%%: %.1fs", i ? ", " : "", 100 * thresholds_[i], *reached_at_[i]);
    else
      std::snprintf(buf, sizeof buf, "%s%g%%: not reached", i ? ", " : "", 100 * thresholds_[i]);
    out += buf;
  }
  return out;
}

nlohmann::ordered_json AccuracyMilestones::time_to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < thresholds_.size(); ++i)
    j[threshold_key(thresholds_[i])] = reached_at_[i] ? nlohmann::ordered_json(*reached_at_[i]) : nullptr;
  return j;
}

nlohmann::ordered_json AccuracyMilestones::state_json() const {
  nlohmann::ordered_json thresholds = nlohmann::ordered_json::array();
  for (double t : thresholds_) thresholds.push_back(t);
  return {{"evaluations", evaluations_},
          {"last", last_},
          {"best", best_},
          {"thresholds", thresholds},
          {"time_to_acc", time_to_json()}};
}

AccuracyMilestones AccuracyMilestones::from_state_json(const nlohmann::json& j) {
  try {
    AccuracyMilestones m(j.at("thresholds").get<std::vector<double>>());
    m.evaluations_ = j.at("evaluations").get<int>();
    m.last_ = j.at("last").get<double>();
    m.best_ = j.at("best").get<double>();
    const nlohmann::json& times = j.at("time_to_acc");
    for (std::size_t i = 0; i < m.thresholds_.size(); ++i) {
      const nlohmann::json& t = times.at(threshold_key(m.thresholds_[i]));
      if (!t.is_null()) m.reached_at_[i] = t.get<double>();
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("accuracy milestones are malformed: ") + e.what());
  }
}

}  // namespace vitscale::train
