// metrics_log.h — the live console line and the JSONL metrics file.
//
// Console: one plain line per logged step (no carriage returns, no colours), so
// it reads the same in a terminal and in a log file:
//   [ep  3/10] step   1404/4680  30.0%  loss 0.4321  lr 1.23e-03  |g| 0.85  2345 img/s  1m02s  ETA 3m12s
//       acc 0.8712 best 0.8750       (one line; "acc .. best ..": the last test accuracy and the best so far,
//                                     once an evaluation has run), and at the end
//   final: test_acc=0.8892 best=0.8901 test_loss=.. images/s=.. wall=..s;
//       time to 85%: 123.4s, 88%: 390.1s, 90%: not reached
// (training-loop wall time, evaluations included, at which an evaluation first reached each accuracy).
// JSONL (--metrics-out): one object per line, flushed as written so a crash
// loses nothing before it:
//   {"event":"train","step":..,"epoch":..,"loss":..,"lr":..,"grad_norm":..,"images_per_s":..,"elapsed_s":..,
//    "time_ms":{"data":..,"upload":..,"forward":..,"backward":..,"comm":.. (exposed),"comm_total":..,"overlap":..,
//               "optimizer":..}}   (time_ms with wall_clock_breakdown)
//   {"event":"eval","epoch":..,"step":..,"test_acc":..,"test_loss":..,"images":..,"eval_s":..,"elapsed_s":..}
//       (with --ema-decay also "weights":"ema","live_test_acc":..,"live_test_loss":..: test_acc is the average's)
//   {"event":"final","test_acc":..,"best_test_acc":..,"test_loss":..,"images_per_s":..,"wall_s":..,"steps":..,
//    "time_to_acc":{"0.85":123.4,"0.88":390.1,"0.90":null}}   (null: not reached)
// plus "start", "resume", "checkpoint", "interrupted" and "flops_profile" records.
// With csv_monitor, the train and eval records also go to a CSV file, one row
// each: event,step,epoch,loss,lr,grad_norm,images_per_s,elapsed_s,test_acc,test_loss
// (empty cells where a record has no such field). Losses are
// written with full double precision (round-trip exact), so two runs' files can
// be compared bit for bit.
#pragma once

#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <algorithm>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "train/accuracy_milestones.h"

namespace vitscale::train {

// Seconds per phase of a step (averaged over the steps since the last line).
struct StepTimes {
  // data: waiting for the loader's next batch; upload: copying it to the
  // device (host-to-device on a GPU, into the model's input buffers on a CPU).
  double data = 0, upload = 0, forward = 0, backward = 0, comm = 0, optimizer = 0;
  // Not a phase of its own: all communication time, of which `comm` is the
  // part backward did not hide.
  double comm_total = 0;
  double overlap() const { return comm_total > 0 ? std::clamp(1.0 - comm / comm_total, 0.0, 1.0) : 0.0; }
  double total() const { return data + upload + forward + backward + comm + optimizer; }
  StepTimes& operator+=(const StepTimes& o);
  StepTimes scaled(double f) const;
};

struct TrainRecord {
  std::int64_t step = 0, total_steps = 0;
  int epoch = 0, epochs = 0;  // 1-based epoch the step belongs to
  double loss = 0, lr = 0, grad_norm = 0;
  double images_per_s = 0, elapsed_s = 0, eta_s = 0;
  std::optional<StepTimes> breakdown;  // per step, seconds
  std::optional<double> test_acc, best_test_acc;  // the last evaluation's and the best so far (none before one)
};

struct EvalRecord {
  int epoch = 0;
  std::int64_t step = 0, images = 0;
  double test_acc = 0, test_loss = 0, eval_s = 0;
  double elapsed_s = 0;  // training-loop wall time at the evaluation's end (the clock of time_to_acc)
  // With the weight average (--ema-decay): test_acc/test_loss are the
  // average's, these the live weights' of the same step.
  std::optional<double> live_acc, live_loss;
};

struct FinalRecord {
  double test_acc = 0, test_loss = 0, images_per_s = 0, wall_s = 0;
  std::int64_t steps = 0;
  AccuracyMilestones milestones;  // best accuracy and time to each round one
};

std::string format_duration(double seconds);  // "45s", "3m12s", "2h05m"

class MetricsLog {
 public:
  // console: where lines go (std::cout); jsonl_path, csv_path empty: no such
  // file. append: continue existing files (a resumed run). enabled = false
  // (ranks > 0): nothing is printed or written.
  MetricsLog(std::ostream& console, const std::string& jsonl_path, bool append, bool enabled = true,
             const std::string& csv_path = "");

  void train(const TrainRecord& r);
  void eval(const EvalRecord& r);
  void final(const FinalRecord& r);
  // Any other record; "event" is added first.
  void event(const std::string& name, const nlohmann::ordered_json& fields);
  // A free-form console line (not in the JSONL file).
  void note(const std::string& line);
  // "holdout" when the evaluations run on a part of the train split (--holdout):
  // the console then says holdout_acc, and eval/final records carry
  // "split":"holdout" beside the usual test_acc keys. Default "test".
  void set_eval_split(std::string split) { eval_split_ = std::move(split); }

 private:
  void write(const nlohmann::ordered_json& record);
  void write_csv(const nlohmann::ordered_json& record);
  std::ostream& console_;
  std::ofstream file_, csv_;
  bool enabled_;
  std::string eval_split_ = "test";
};

}  // namespace vitscale::train
