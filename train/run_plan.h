// run_plan.h — what a training run is, apart from the engine that computes it:
// which images it trains and evaluates on, how many steps it takes, which
// batches it sees, and the optimizer settings of each step.
//
// The trainer (train/trainer.cpp) and the LibTorch recipe baseline
// (tools/torch_ref/torch_train_main.cpp) both build their run from these, so
// "the same recipe" means the same images, the same batch bytes in the same
// order, the same learning rate at every step, and the same evaluation split:
// only the arithmetic differs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "data/loader.h"
#include "runtime/backend.h"
#include "train/lr_schedule.h"
#include "train/train_config.h"

namespace vitscale::train {

struct RunDatasets {
  data::Dataset train;  // the images trained on (after --holdout and --train-subset)
  data::Dataset eval;   // the test split, or the train split's tail under --holdout
};

// Loads the run's datasets and checks they fit the model: --holdout's tail
// leaves training images, --train-subset fits, images are square and divisible
// by the patch. Fills config.image_size from the data when it is 0 and, for an
// image folder, config.image_channels. progress: large image folders' lines.
RunDatasets load_run_datasets(TrainConfig& config, const std::function<void(const std::string&)>& progress = {});

// The model's input normalisation: the train split's per-channel statistics.
ImageNorm image_norm_of(const data::Dataset& train);

// Steps of a run over the `train` images (the whole job's):
// whole micro-batches per rank, then whole accumulation windows; the few
// micro-batches left over at an epoch's end are skipped.
struct RunLength {
  std::int64_t loader_steps_per_epoch = 0;  // micro-batches per rank per epoch
  std::int64_t steps_per_epoch = 0;         // optimizer steps per epoch
  std::int64_t total_steps = 0;             // --max-steps, else epochs x steps_per_epoch
  int epochs = 0;                           // epochs begun (the last may be partial under --max-steps)
};
RunLength run_length(const TrainConfig& config, const data::Dataset& train);  // throws ConfigError

// The training stream for `rank` of `world_size`, starting at (start_epoch,
// start_micro_step); endless (the caller counts steps). Host memory comes from
// `allocator` (empty: aligned host memory).
data::LoaderConfig train_loader_config(const TrainConfig& config, int world_size, int rank, std::int64_t start_epoch,
                                       std::int64_t start_micro_step, HostAllocator allocator = {});

// AdamW's settings for optimizer update `step` (1-based): the schedule's rate
// (and OneCycle's momentum), the config's eps, decay and clipping.
AdamWHyper step_hyper(const TrainConfig& config, const LrSchedule& schedule, std::int64_t step);

}  // namespace vitscale::train
