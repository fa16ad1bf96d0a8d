// checkpoint.h — training checkpoints: weights, optimizer state and the run's
// position, in one safetensors file that timm can also load.
//
// File ckpt-<step, 8 digits>.safetensors in --save-dir:
//   tensors   the parameters under timm's names (load in PyTorch as they are),
//             "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>", and with
//             --ema-decay the weights' moving average as "ema.<name>"
//   metadata  vitscale_checkpoint = "1", step, epoch, epoch_step, images_seen,
//             train_s, rng ({"seed": ...}: every random draw in vitscale is a
//             pure function of the seed and a counter, so this is all the RNG
//             state there is), data_state (epoch and batches consumed in it),
//             last_eval, accuracy (loop_s and the AccuracyMilestones state;
//             optional, older checkpoints lack it), config (the full resolved config as JSON) and
//             checksum = "crc32:<8 hex>" over every tensor's name, shape and
//             bytes and every other metadata entry.
// A `latest` file names the newest checkpoint. Both are written atomically
// (temporary file, fsync, rename, fsync of the directory), checkpoint first, so
// a crash at any moment leaves `latest` naming a complete, verified file. The
// newest `keep` checkpoints are kept.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/param_table.h"
#include "runtime/safetensors.h"
#include "train/accuracy_milestones.h"

namespace vitscale::train {

// Where a run is: enough to continue it bit for bit.
struct TrainState {
  std::int64_t step = 0;         // optimizer steps done
  int epoch = 0;                 // 0-based epoch the next step belongs to
  std::int64_t epoch_step = 0;   // steps of that epoch already done
  std::int64_t images_seen = 0;  // over all ranks
  double train_s = 0;            // wall time spent so far (for throughput and ETA after a resume)
  std::uint64_t seed = 0;
  int last_eval_epoch = 0;  // 1-based; 0: none yet
  double last_test_acc = 0, last_test_loss = 0;
  // Wall time of the training loops so far, evaluations included (the clock
  // of `milestones`), and what the evaluations reached.
  double loop_s = 0;
  AccuracyMilestones milestones;
};

struct Checkpoint {
  TrainState state;
  nlohmann::json config;                   // TrainConfig::to_json() of the run that wrote it
  std::vector<float> params;               // (n) flat, in the ParamTable's layout
  std::vector<float> exp_avg, exp_avg_sq;  // (n) flat, the same layout
  std::vector<float> ema;                  // (n) the weights' moving average (--ema-decay); empty: none
  std::string model_card;                  // train/model_card.h's JSON, stored as metadata "model_card" ("" : none)
};

// Writes `ckpt` to `path` atomically. Throws std::runtime_error naming the file.
void write_checkpoint(const std::string& path, const ParamTable& table, const Checkpoint& ckpt);
// Reads and verifies (format, checksum, every tensor present with its shape).
// Throws std::runtime_error with one line naming the file and the problem.
Checkpoint read_checkpoint(const std::string& path, const ParamTable& table);
// The checksum of a file's contents, as stored in metadata["checksum"].
std::string checkpoint_checksum(const SafetensorsFile& file);

// The checkpoint directory: numbered files, the `latest` pointer, pruning.
class CheckpointDir {
 public:
  // Creates the directory if needed and removes temporary files left by a crash.
  CheckpointDir(std::string dir, int keep);
  // Writes ckpt-<step>.safetensors, then points `latest` at it, then prunes.
  // Returns the path written.
  std::string save(const ParamTable& table, const Checkpoint& ckpt);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_;
};

std::string checkpoint_file_name(std::int64_t step);  // "ckpt-00000200.safetensors"
// A --resume argument to a checkpoint file: a file as it is, a directory through
// its `latest` file. Throws naming what is missing.
std::string resolve_resume_path(const std::string& path_or_dir);
// The checkpoint `latest` names in `dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& dir);

}  // namespace vitscale::train
