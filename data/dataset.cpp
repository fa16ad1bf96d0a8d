// dataset.cpp — the dataset's helpers: normalisation constants, validation, subsets, the holdout split.
#include "data/dataset.h"

#include <algorithm>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>

#include "data/rng.h"

namespace vitscale::data {

const char* split_name(Split split) { return split == Split::train ? "train" : "test"; }

Normalization cifar10_normalization() { return {3, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}; }
Normalization cifar100_normalization() { return {3, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}}; }
Normalization fashion_mnist_normalization() { return {1, {0.2860f, 0.f, 0.f}, {0.3530f, 1.f, 1.f}}; }

std::string Dataset::describe() const {
  return name + "/" + split_name(split) + ": " + std::to_string(count) + " x " + std::to_string(channels) + "x" +
         std::to_string(height) + "x" + std::to_string(width) + ", " + std::to_string(num_classes) +
         " classes, from " + source;
}

void validate(const Dataset& d) {
  const std::string who = d.name + "/" + split_name(d.split);
  if (d.count < 0 || d.channels < 1 || d.height < 1 || d.width < 1 || d.num_classes < 1)
    throw std::runtime_error(who + ": invalid shape " + std::to_string(d.count) + " x " + std::to_string(d.channels) +
                             "x" + std::to_string(d.height) + "x" + std::to_string(d.width) + ", " +
                             std::to_string(d.num_classes) + " classes");
  if (d.channels > 3)
    throw std::runtime_error(who + ": " + std::to_string(d.channels) + " channels (at most 3 are supported)");
  if (d.images.size() != static_cast<std::size_t>(d.count) * d.image_bytes())
    throw std::runtime_error(who + ": " + std::to_string(d.images.size()) + " pixel bytes for " +
                             std::to_string(d.count) + " images of " + std::to_string(d.image_bytes()) + " bytes");
  if (d.labels.size() != static_cast<std::size_t>(d.count))
    throw std::runtime_error(who + ": " + std::to_string(d.labels.size()) + " labels for " + std::to_string(d.count) +
                             " images");
  for (std::size_t i = 0; i < d.labels.size(); ++i)
    if (d.labels[i] < 0 || d.labels[i] >= d.num_classes)
      throw std::runtime_error(who + ": label " + std::to_string(d.labels[i]) + " of image " + std::to_string(i) +
                               " is outside [0, " + std::to_string(d.num_classes) + ")");
  if (d.normalization.channels != d.channels)
    throw std::runtime_error(who + ": normalisation has " + std::to_string(d.normalization.channels) +
                             " channels, images have " + std::to_string(d.channels));
}

namespace {

// The images at `rows` (in that order) with the dataset's header.
Dataset copy_rows(const Dataset& d, std::span<const std::int64_t> rows, std::string source) {
  Dataset out;
  out.name = d.name;
  out.source = std::move(source);
  out.split = d.split;
  out.count = static_cast<std::int64_t>(rows.size());
  out.channels = d.channels;
  out.height = d.height;
  out.width = d.width;
  out.num_classes = d.num_classes;
  out.class_names = d.class_names;
  out.normalization = d.normalization;
  out.images.resize(rows.size() * d.image_bytes());  // (rows, C, H, W)
  out.labels.resize(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(d.image(rows[i]), d.image_bytes(), out.images.data() + i * d.image_bytes());
    out.labels[i] = d.labels[static_cast<std::size_t>(rows[i])];
  }
  return out;
}

}  // namespace

Dataset take_subset(const Dataset& d, std::int64_t count, std::uint64_t seed) {
  if (count < 1 || count > d.count)
    throw std::runtime_error(d.name + ": subset of " + std::to_string(count) + " images requested from " +
                             std::to_string(d.count));
  // Partial Fisher-Yates: the first `count` entries are a uniform random subset.
  std::vector<std::int64_t> order(static_cast<std::size_t>(d.count));
  for (std::int64_t i = 0; i < d.count; ++i) order[static_cast<std::size_t>(i)] = i;
  Rng rng(derive_key(seed, RngStream::subset, static_cast<std::uint64_t>(count)));
  for (std::int64_t i = 0; i < count; ++i) {
    const auto j = i + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(d.count - i)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  std::sort(order.begin(), order.begin() + count);

  return copy_rows(d, std::span<const std::int64_t>(order.data(), static_cast<std::size_t>(count)),
                   d.source + " (subset of " + std::to_string(count) + ", seed " + std::to_string(seed) + ")");
}

HoldoutSplit split_holdout(const Dataset& d, std::int64_t holdout) {
  if (holdout < 1 || holdout >= d.count)
    throw std::runtime_error(d.name + ": a holdout of " + std::to_string(holdout) + " images needs 1 to " +
                             std::to_string(d.count - 1) + " (the train split has " + std::to_string(d.count) + ")");
  std::vector<std::int64_t> rows(static_cast<std::size_t>(d.count));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  const std::int64_t kept = d.count - holdout;
  const std::span<const std::int64_t> all(rows);
  return {copy_rows(d, all.first(static_cast<std::size_t>(kept)),
                             d.source + " (first " + std::to_string(kept) + ")"),
                   copy_rows(d, all.subspan(static_cast<std::size_t>(kept)),
                             d.source + " (holdout: last " + std::to_string(holdout) + " train images)")};
}

}  // namespace vitscale::data
