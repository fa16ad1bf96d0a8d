// accuracy_milestones.h — what the evaluations of a run have reached: the last
// and the best test accuracy, and the training time at which each round
// accuracy (85%, 88%, 90%) was first reached by an evaluation.
//
// "Time" is what the caller passes: the trainer gives the wall seconds of the
// training loop so far (evaluations included, data loading and model set-up
// before the first step excluded), summed over the sessions of a resumed run.
// A pure value type, so the console line, the final JSONL record and the
// checkpoint all read the same state, and tests need no trainer.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vitscale::train {

class AccuracyMilestones {
 public:
  // thresholds: fractions in (0, 1], e.g. 0.85; kept in the order given.
  explicit AccuracyMilestones(std::vector<double> thresholds = {0.85, 0.88, 0.90});

  // One evaluation's accuracy (a fraction), finished at `seconds`.
  void record(double accuracy, double seconds);

  int evaluations() const { return evaluations_; }
  double last() const { return last_; }  // 0 before any evaluation
  double best() const { return best_; }
  const std::vector<double>& thresholds() const { return thresholds_; }
  // When thresholds()[i] was first reached; nullopt: not (yet) reached.
  std::optional<double> reached_at(std::size_t i) const { return reached_at_.at(i); }

  // "time to 85%: 123.4s, 88%: 301.2s, 90%: not reached"
  std::string describe() const;
  // {"0.85": 123.4, "0.88": 301.2, "0.90": null}: the final record's time_to_acc.
  nlohmann::ordered_json time_to_json() const;
  // The whole state, for a checkpoint; from_state_json reads it back (and
  // throws std::runtime_error on a malformed one).
  nlohmann::ordered_json state_json() const;
  static AccuracyMilestones from_state_json(const nlohmann::json& j);

  static std::string threshold_key(double threshold);  // 0.85 -> "0.85"

 private:
  std::vector<double> thresholds_;
  std::vector<std::optional<double>> reached_at_;
  int evaluations_ = 0;
  double last_ = 0, best_ = 0;
};

}  // namespace vitscale::train
