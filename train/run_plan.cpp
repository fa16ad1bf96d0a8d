#include "train/run_plan.h"

#include <string>

#include "data/dataset_registry.h"
#include "train/evaluation.h"

namespace vitscale::train {

namespace {

data::AugmentConfig augment_config(const TrainConfig& c) {
  data::AugmentConfig a;
  a.crop_padding = c.crop_padding;
  a.horizontal_flip = c.hflip;
  a.randaugment_ops = c.randaugment_ops;
  a.randaugment_magnitude = c.randaugment_magnitude;
  a.mixup_alpha = static_cast<float>(c.mixup_alpha);
  a.cutmix_alpha = static_cast<float>(c.cutmix_alpha);
  a.label_smoothing = static_cast<float>(c.label_smoothing);
  return a;
}

}  // namespace

RunDatasets load_run_datasets(TrainConfig& config, const std::function<void(const std::string&)>& progress) {
  data::LoadOptions options = dataset_load_options(config);
  if (progress) options.image_folder.progress = progress;
  RunDatasets sets;
  sets.train = data::load_dataset(config.dataset, config.data_dir, data::Split::train, options);
  if (config.dataset == "imagefolder")  // the model's channels, also for val and in the checkpoint's config
    config.image_channels = options.image_folder.channels = sets.train.channels;
  if (config.holdout > 0) {
    // Choosing a recipe: evaluate on the train split's tail, never read the test split.
    if (config.holdout >= sets.train.count)
      throw ConfigError("data.holdout (--holdout) " + std::to_string(config.holdout) + " leaves no training images of the " +
                        std::to_string(sets.train.count) + " in " + sets.train.name + "/train");
    data::HoldoutSplit split = data::split_holdout(sets.train, config.holdout);
    sets.train = std::move(split.train);
    sets.eval = std::move(split.holdout);
  } else {
    sets.eval = data::load_dataset(config.dataset, config.data_dir, data::Split::test, options);
  }
  if (config.train_subset > 0) {
    if (config.train_subset > sets.train.count)
      throw ConfigError("data.train_subset (--train-subset) " + std::to_string(config.train_subset) + " exceeds the " +
                        std::to_string(sets.train.count) + " images of " + sets.train.name + "/train");
    sets.train = data::take_subset(sets.train, config.train_subset, config.seed);
  }
  if (sets.train.height != sets.train.width)
    throw std::runtime_error(sets.train.describe() + ": images are not square");
  if (config.image_size == 0) config.image_size = sets.train.height;  // the preset follows the dataset
  if (config.image_size % config.patch_size != 0)
    throw ConfigError("model.image_size " + std::to_string(config.image_size) + " (" + sets.train.name +
                      " images, or --image-size) is not divisible by model.patch_size (--patch-size) " +
                      std::to_string(config.patch_size));
  return sets;
}

ImageNorm image_norm_of(const data::Dataset& train) {
  ImageNorm norm;
  norm.channels = train.normalization.channels;
  for (int c = 0; c < 3; ++c) norm.mean[c] = train.normalization.mean[c], norm.std[c] = train.normalization.std[c];
  return norm;
}

RunLength run_length(const TrainConfig& config, const data::Dataset& train) {
  RunLength r;
  const std::int64_t per_rank = train.count / config.world_size;
  r.loader_steps_per_epoch = per_rank / config.micro_batch_size;
  r.steps_per_epoch = r.loader_steps_per_epoch / config.gradient_accumulation_steps;
  if (r.steps_per_epoch < 1)
    throw ConfigError("train_batch_size " + std::to_string(config.train_batch_size) + " is larger than the " +
                      std::to_string(train.count) + " training images of " + train.name +
                      ": not one step per epoch");
  r.total_steps = config.max_steps > 0 ? config.max_steps : static_cast<std::int64_t>(config.epochs) * r.steps_per_epoch;
  r.epochs = static_cast<int>((r.total_steps + r.steps_per_epoch - 1) / r.steps_per_epoch);
  return r;
}

data::LoaderConfig train_loader_config(const TrainConfig& config, int world_size, int rank, std::int64_t start_epoch,
                                       std::int64_t start_micro_step, HostAllocator allocator) {
  data::LoaderConfig lc;
  lc.batch_size = config.micro_batch_size;
  lc.world_size = world_size;
  lc.rank = rank;
  lc.seed = config.seed;
  lc.mode = data::LoaderMode::train;
  lc.shuffle = true;
  lc.augment = augment_config(config);
  lc.num_workers = config.loader_workers;
  lc.prefetch_batches = config.prefetch_batches;
  lc.allocator = std::move(allocator);
  lc.start_epoch = start_epoch;
  lc.start_step = start_micro_step;
  lc.num_epochs = 0;  // endless: the caller counts steps
  return lc;
}

AdamWHyper step_hyper(const TrainConfig& config, const LrSchedule& schedule, std::int64_t step) {
  AdamWHyper h;
  h.lr = static_cast<float>(schedule.lr(step));
  const auto betas = schedule.betas(step);  // OneCycle's cycled momentum, else the config's
  h.beta1 = static_cast<float>(betas ? betas->first : config.beta1);
  h.beta2 = static_cast<float>(betas ? betas->second : config.beta2);
  h.eps = static_cast<float>(config.eps);
  h.weight_decay = static_cast<float>(config.weight_decay);
  h.step = static_cast<int>(step);
  h.max_grad_norm = static_cast<float>(config.gradient_clipping);
  return h;
}

}  // namespace vitscale::train
