#include "train/checkpoint.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace vitscale::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormatKey = "vitscale_checkpoint";
constexpr const char* kFormatVersion = "1";
constexpr const char* kLatest = "latest";

void crc_update(uLong& crc, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(bytes, 1u << 30));
    crc = ::crc32(crc, p, chunk);
    p += chunk;
    bytes -= chunk;
  }
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

const std::string& meta(const SafetensorsFile& f, const std::string& key, const std::string& path) {
  const auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail(path, "checkpoint metadata lacks '" + key + "'");
  return it->second;
}

nlohmann::json meta_json(const SafetensorsFile& f, const std::string& key, const std::string& path) {
  try {
    return nlohmann::json::parse(meta(f, key, path));
  } catch (const nlohmann::json::exception&) {
    fail(path, "checkpoint metadata '" + key + "' is not valid JSON");
  }
}

}  // namespace

std::string checkpoint_checksum(const SafetensorsFile& file) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (const NamedTensor& t : file.tensors) {
    crc_update(crc, t.name.data(), t.name.size() + 1);  // with its terminator: names cannot run together
    crc_update(crc, t.shape.data(), t.shape.size() * sizeof(std::int64_t));
    crc_update(crc, t.values.data(), t.values.size() * sizeof(float));
  }
  for (const auto& [k, v] : file.metadata) {  // std::map: sorted, so the order is canonical
    if (k == "checksum") continue;
    crc_update(crc, k.c_str(), k.size() + 1);
    crc_update(crc, v.c_str(), v.size() + 1);
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "crc32:%08lx", static_cast<unsigned long>(crc & 0xffffffffUL));
  return buf;
}

void write_checkpoint(const std::string& path, const ParamTable& table, const Checkpoint& c) {
  const auto n = static_cast<std::size_t>(table.total_numel());
  if (c.params.size() != n || c.exp_avg.size() != n || c.exp_avg_sq.size() != n ||
      (!c.ema.empty() && c.ema.size() != n))
    throw std::invalid_argument(path + ": checkpoint buffers do not match the model's " + std::to_string(n) +
                                " parameters");
  SafetensorsFile f;
  auto slice = [&](const std::vector<float>& flat, const ParamInfo& p) {
    const auto first = flat.begin() + p.offset;
    return std::vector<float>(first, first + p.numel);
  };
  for (const ParamInfo& p : table.params()) f.tensors.push_back({p.name, p.shape, slice(c.params, p)});
  for (const ParamInfo& p : table.params())
    f.tensors.push_back({"optimizer.exp_avg." + p.name, p.shape, slice(c.exp_avg, p)});
  for (const ParamInfo& p : table.params())
    f.tensors.push_back({"optimizer.exp_avg_sq." + p.name, p.shape, slice(c.exp_avg_sq, p)});
  if (!c.ema.empty())
    for (const ParamInfo& p : table.params())
      f.tensors.push_back({kWeightAveragePrefix + p.name, p.shape, slice(c.ema, p)});

  const TrainState& s = c.state;
  f.metadata["format"] = "pt";  // what safetensors.torch / timm expect
  f.metadata[kFormatKey] = kFormatVersion;
  f.metadata["step"] = std::to_string(s.step);
  f.metadata["epoch"] = std::to_string(s.epoch);
  f.metadata["epoch_step"] = std::to_string(s.epoch_step);
  f.metadata["images_seen"] = std::to_string(s.images_seen);
  f.metadata["train_s"] = nlohmann::json(s.train_s).dump();
  f.metadata["rng"] = nlohmann::json{{"seed", s.seed}, {"kind", "counter-based (seed, stream, counter)"}}.dump();
  f.metadata["data_state"] = nlohmann::json{{"epoch", s.epoch}, {"steps_done_in_epoch", s.epoch_step}}.dump();
  f.metadata["last_eval"] =
      nlohmann::json{{"epoch", s.last_eval_epoch}, {"test_acc", s.last_test_acc}, {"test_loss", s.last_test_loss}}
          .dump();
  f.metadata["accuracy"] = nlohmann::json{{"loop_s", s.loop_s}, {"milestones", s.milestones.state_json()}}.dump();
  f.metadata["config"] = c.config.dump();
  if (!c.model_card.empty()) f.metadata["model_card"] = c.model_card;
  f.metadata["checksum"] = checkpoint_checksum(f);
  write_safetensors(path, f);
}

Checkpoint read_checkpoint(const std::string& path, const ParamTable& table) {
  const SafetensorsFile f = read_safetensors(path);  // refuses truncated / malformed files
  if (!f.metadata.count(kFormatKey))
    fail(path, "not a vitscale training checkpoint (no '" + std::string(kFormatKey) + "' metadata)");
  if (meta(f, kFormatKey, path) != kFormatVersion)
    fail(path, "checkpoint format version " + meta(f, kFormatKey, path) + " is not supported (expected " +
                   kFormatVersion + ")");
  const std::string stored = meta(f, "checksum", path), actual = checkpoint_checksum(f);
  if (stored != actual)
    fail(path, "checksum mismatch (stored " + stored + ", computed " + actual + "): the file is corrupted");

  Checkpoint c;
  try {
    TrainState& s = c.state;
    s.step = std::stoll(meta(f, "step", path));
    s.epoch = std::stoi(meta(f, "epoch", path));
    s.epoch_step = std::stoll(meta(f, "epoch_step", path));
    s.images_seen = std::stoll(meta(f, "images_seen", path));
    s.train_s = meta_json(f, "train_s", path).get<double>();
    s.seed = meta_json(f, "rng", path).at("seed").get<std::uint64_t>();
    const nlohmann::json ev = meta_json(f, "last_eval", path);
    s.last_eval_epoch = ev.at("epoch").get<int>();
    s.last_test_acc = ev.at("test_acc").get<double>();
    s.last_test_loss = ev.at("test_loss").get<double>();
    if (f.metadata.count("accuracy")) {
      const nlohmann::json acc = meta_json(f, "accuracy", path);
      s.loop_s = acc.at("loop_s").get<double>();
      s.milestones = AccuracyMilestones::from_state_json(acc.at("milestones"));
    } else {
      s.loop_s = s.train_s;  // a checkpoint from before the milestones: the best estimate there is
    }
  } catch (const std::runtime_error&) {
    throw;
  } catch (const std::exception& e) {
    fail(path, std::string("checkpoint metadata is malformed: ") + e.what());
  }
  c.config = meta_json(f, "config", path);
  if (const auto it = f.metadata.find("model_card"); it != f.metadata.end()) c.model_card = it->second;

  const auto n = static_cast<std::size_t>(table.total_numel());
  c.params.assign(n, 0.f);
  c.exp_avg.assign(n, 0.f);
  c.exp_avg_sq.assign(n, 0.f);
  auto fill = [&](std::vector<float>& flat, const std::string& prefix) {
    for (const ParamInfo& p : table.params()) {
      const NamedTensor* t = f.find(prefix + p.name);
      if (!t) fail(path, "checkpoint lacks tensor '" + prefix + p.name + "' " + shape_str(p.shape));
      if (t->shape != p.shape)
        fail(path, "tensor '" + prefix + p.name + "' has shape " + shape_str(t->shape) + ", the model needs " +
                       shape_str(p.shape) + " (a different model config?)");
      std::copy(t->values.begin(), t->values.end(), flat.begin() + p.offset);
    }
  };
  fill(c.params, "");
  fill(c.exp_avg, "optimizer.exp_avg.");
  fill(c.exp_avg_sq, "optimizer.exp_avg_sq.");
  if (has_weight_average(f, table)) {
    c.ema.assign(n, 0.f);
    fill(c.ema, kWeightAveragePrefix);
  }
  return c;
}

std::string checkpoint_file_name(std::int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "ckpt-%08lld.safetensors", static_cast<long long>(step));
  return buf;
}

CheckpointDir::CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(std::max(keep, 1)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw std::runtime_error(dir_ + ": cannot create the checkpoint directory: " + ec.message());
  // Written and removed now, before step 1: a directory that takes no files
  // (read-only, full, no permission) fails here, not at the first checkpoint
  // after hours of training.
  const fs::path probe = fs::path(dir_) / (".write-probe." + std::to_string(::getpid()));
  {
    std::ofstream out(probe, std::ios::binary | std::ios::trunc);
    if (!(out << "vitscale" << std::flush))
      throw std::runtime_error(dir_ + ": cannot write in the checkpoint directory (probe file " +
                               probe.filename().string() + "): " + std::strerror(errno));
  }
  fs::remove(probe, ec);
  // A crash mid-write leaves ".<name>.tmp.<pid>" (runtime/safetensors.h); it was
  // never renamed into place, so it is garbage.
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".ckpt-", 0) == 0 || name.rfind(".latest.tmp.", 0) == 0) fs::remove(e.path(), ec);
  }
}

std::string CheckpointDir::save(const ParamTable& table, const Checkpoint& ckpt) {
  const std::string name = checkpoint_file_name(ckpt.state.step);
  const std::string path = (fs::path(dir_) / name).string();
  write_checkpoint(path, table, ckpt);
  write_file_atomically((fs::path(dir_) / kLatest).string(), name + "\n");
  // Prune: keep the newest keep_ (names sort by step: 8 zero-padded digits).
  std::vector<std::string> all;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ckpt-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") all.push_back(n);
  }
  std::sort(all.begin(), all.end());
  std::error_code ec;
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < all.size(); ++i)
    if (all[i] != name) fs::remove(fs::path(dir_) / all[i], ec);
  return path;
}

std::string latest_checkpoint(const std::string& dir) {
  const fs::path p = fs::path(dir) / kLatest;
  std::ifstream in(p);
  if (!in) return "";
  std::string name;
  std::getline(in, name);
  if (name.empty()) return "";
  return (fs::path(dir) / name).string();
}

std::string resolve_resume_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::string latest = latest_checkpoint(path);
    if (latest.empty()) throw std::runtime_error(path + ": no 'latest' file in this directory: nothing to resume from");
    if (!fs::is_regular_file(latest, ec))
      throw std::runtime_error((fs::path(path) / kLatest).string() + " names " + latest + ", which does not exist");
    return latest;
  }
  if (!fs::exists(path, ec)) throw std::runtime_error(path + ": no such checkpoint file or directory");
  return path;
}

}  // namespace vitscale::train
