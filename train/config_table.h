// config_table.h — the one table of settings behind the JSON file, the flags
// and the error messages (internal to train/).
//
// Each row ties a TrainOptions member to its JSON key (dotted path) and its
// long flag. The JSON reader, the CLI11 options and every "key (--flag)" in an
// error message come from this table, so a name is written exactly once.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "train/train_config.h"

namespace vitscale::train {

using SettingMember =
    std::variant<std::optional<int> TrainOptions::*, std::optional<std::int64_t> TrainOptions::*,
                 std::optional<std::uint64_t> TrainOptions::*, std::optional<double> TrainOptions::*,
                 std::optional<bool> TrainOptions::*, std::optional<std::string> TrainOptions::*>;

struct Setting {
  const char* json_key;  // "zero_optimization.stage"; the betas pair is special-cased
  const char* flag;      // "--zero-stage" (bools also get "--no-<name>")
  const char* group;     // the --help section
  const char* help;
  SettingMember member;
};

std::span<const Setting> settings();
// "zero_optimization.stage (--zero-stage)"; the key alone when it has no row.
std::string setting_label(const std::string& json_key);
// Copies every set field of `over` onto `base`.
void merge_options(TrainOptions& base, const TrainOptions& over);
// Whether `options` sets the setting with this JSON key.
bool is_set(const TrainOptions& options, const std::string& json_key);
// What a key written as "auto" resolved to in `config` (JSON text).
std::string auto_value(const TrainConfig& config, const std::string& json_key);

}  // namespace vitscale::train
