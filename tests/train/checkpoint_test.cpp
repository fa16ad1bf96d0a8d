// checkpoint_test.cpp — checkpoints round-trip bit for bit; a flipped byte, a
// truncated file or a foreign file is refused with one line; a crash while
// writing never costs the previous checkpoint.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/rng.h"
#include "runtime/safetensors.h"
#include "train/checkpoint.h"

using namespace vitscale;
using namespace vitscale::train;
namespace fs = std::filesystem;

namespace {

ViTConfig tiny() {
  ViTConfig c;
  c.image_size = 8;
  c.channels = 1;
  c.patch_size = 4;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 32;
  c.num_classes = 5;
  return c;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("vitscale_ckpt_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

Checkpoint sample_checkpoint(const ParamTable& table, std::int64_t step, std::uint64_t seed) {
  Checkpoint c;
  Rng rng = Rng::from_seed(seed);
  const auto n = static_cast<std::size_t>(table.total_numel());
  for (auto* v : {&c.params, &c.exp_avg, &c.exp_avg_sq}) {
    v->assign(n, 0.f);
    for (const ParamInfo& p : table.params())
      for (std::int64_t i = 0; i < p.numel; ++i) (*v)[static_cast<std::size_t>(p.offset + i)] = static_cast<float>(rng.normal());
  }
  c.state.step = step;
  c.state.epoch = 3;
  c.state.epoch_step = 7;
  c.state.images_seen = step * 64;
  c.state.train_s = 12.5;
  c.state.seed = seed;
  c.state.last_eval_epoch = 3;
  c.state.last_test_acc = 0.875;
  c.state.last_test_loss = 0.4321;
  c.state.loop_s = 14.75;
  c.state.milestones.record(0.86, 9.5);
  c.state.milestones.record(0.875, 14.5);
  c.config = {{"model", {{"dim", 16}}}, {"training", {{"seed", seed}}}};
  return c;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string refusal(const std::string& path, const ParamTable& table) {
  try {
    read_checkpoint(path, table);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a checkpoint round-trips weights, moments and position bit for bit", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  const Checkpoint c = sample_checkpoint(table, 42, 7);
  write_checkpoint(dir / "a.safetensors", table, c);
  const Checkpoint r = read_checkpoint(dir / "a.safetensors", table);
  CHECK(r.params == c.params);
  CHECK(r.exp_avg == c.exp_avg);
  CHECK(r.exp_avg_sq == c.exp_avg_sq);
  CHECK(r.state.step == 42);
  CHECK(r.state.epoch == 3);
  CHECK(r.state.epoch_step == 7);
  CHECK(r.state.images_seen == 42 * 64);
  CHECK(r.state.train_s == 12.5);
  CHECK(r.state.seed == 7);
  CHECK(r.state.last_test_acc == 0.875);
  CHECK(r.state.last_test_loss == 0.4321);
  CHECK(r.state.loop_s == 14.75);  // the milestones' clock and state continue after a resume
  CHECK(r.state.milestones.state_json() == c.state.milestones.state_json());
  CHECK(r.config == c.config);
}

TEST_CASE("the parameters are stored under timm's names, loadable as plain weights", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  write_checkpoint(dir / "a.safetensors", table, sample_checkpoint(table, 1, 1));
  const SafetensorsFile f = read_safetensors(dir / "a.safetensors");
  REQUIRE(f.find("blocks.1.attn.qkv.weight"));
  CHECK(f.find("blocks.1.attn.qkv.weight")->shape == std::vector<std::int64_t>{48, 16});
  CHECK(f.find("optimizer.exp_avg.head.weight"));
  CHECK(f.find("optimizer.exp_avg_sq.patch_embed.proj.weight"));
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("checksum").rfind("crc32:", 0) == 0);
}

TEST_CASE("a flipped byte anywhere is refused", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  const std::string good = dir / "good.safetensors";
  write_checkpoint(good, table, sample_checkpoint(table, 5, 3));
  const std::string bytes = read_bytes(good);
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  // In the tensor data (first, middle, last byte) and in the header's JSON.
  const std::vector<std::size_t> positions = {8 + header_len, 8 + header_len + (bytes.size() - 8 - header_len) / 2,
                                              bytes.size() - 1, 8 + header_len / 2, 9};
  for (std::size_t pos : positions) {
    INFO("flipped byte at " << pos << " of " << bytes.size());
    std::string bad = bytes;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    write_bytes(dir / "bad.safetensors", bad);
    const std::string e = refusal(dir / "bad.safetensors", table);
    CHECK_THAT(e, Catch::Contains(dir / "bad.safetensors"));
    CHECK(e.find('\n') == std::string::npos);
    if (pos >= 8 + header_len) CHECK_THAT(e, Catch::Contains("checksum mismatch"));
  }
}

TEST_CASE("a truncated checkpoint is refused", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  const std::string good = dir / "good.safetensors";
  write_checkpoint(good, table, sample_checkpoint(table, 5, 3));
  const std::string bytes = read_bytes(good);
  for (std::size_t keep : {std::size_t{0}, std::size_t{5}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    write_bytes(dir / "cut.safetensors", bytes.substr(0, keep));
    CHECK_THAT(refusal(dir / "cut.safetensors", table), Catch::Contains("truncated") || Catch::Contains("JSON"));
  }
}

TEST_CASE("weights-only files and other models' checkpoints are refused by name", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  SafetensorsFile weights;
  weights.tensors.push_back({"head.weight", {5, 16}, std::vector<float>(80, 0.f)});
  write_safetensors(dir / "w.safetensors", weights);
  CHECK_THAT(refusal(dir / "w.safetensors", table), Catch::Contains("not a vitscale training checkpoint"));

  ViTConfig wider = tiny();
  wider.dim = 32;
  wider.mlp_dim = 64;
  const ParamTable other(wider);
  write_checkpoint(dir / "other.safetensors", other, sample_checkpoint(other, 1, 1));
  CHECK_THAT(refusal(dir / "other.safetensors", table), Catch::Contains("has shape") && Catch::Contains("the model needs"));
  CHECK_THAT(refusal(dir / "missing.safetensors", table), Catch::Contains("cannot open"));
}

TEST_CASE("the checkpoint directory keeps the newest files and a latest pointer", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  CheckpointDir ckpts(dir.path.string(), 2);
  for (std::int64_t step : {10, 20, 30, 40}) ckpts.save(table, sample_checkpoint(table, step, 1));
  CHECK_FALSE(fs::exists(dir / checkpoint_file_name(10)));
  CHECK_FALSE(fs::exists(dir / checkpoint_file_name(20)));
  CHECK(fs::exists(dir / checkpoint_file_name(30)));
  CHECK(latest_checkpoint(dir.path.string()) == dir / checkpoint_file_name(40));
  CHECK(resolve_resume_path(dir.path.string()) == dir / checkpoint_file_name(40));
  CHECK(read_checkpoint(resolve_resume_path(dir.path.string()), table).state.step == 40);
  TempDir empty;
  CHECK_THROWS_WITH(resolve_resume_path(empty.path.string()), Catch::Contains("no 'latest' file"));
  CHECK_THROWS_WITH(resolve_resume_path(empty / "nope"), Catch::Contains("no such checkpoint"));
}

TEST_CASE("a crash while writing a checkpoint leaves the previous one in place", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  {
    CheckpointDir ckpts(dir.path.string(), 2);
    ckpts.save(table, sample_checkpoint(table, 10, 1));
  }
  // What a process killed in the middle of writing step 20 leaves behind: the
  // temporary file, half written, never renamed; `latest` untouched.
  const std::string full = read_bytes(dir / checkpoint_file_name(10));
  const std::string stale = dir / ("." + checkpoint_file_name(20) + ".tmp.99999");
  write_bytes(stale, full.substr(0, full.size() / 2));
  const std::string latest = resolve_resume_path(dir.path.string());
  CHECK(latest == dir / checkpoint_file_name(10));
  CHECK(read_checkpoint(latest, table).state.step == 10);
  // The restarted run cleans the debris up and carries on.
  CheckpointDir again(dir.path.string(), 2);
  CHECK_FALSE(fs::exists(stale));
  again.save(table, sample_checkpoint(table, 20, 1));
  CHECK(read_checkpoint(resolve_resume_path(dir.path.string()), table).state.step == 20);
  CHECK(read_checkpoint(dir / checkpoint_file_name(10), table).state.step == 10);
}

TEST_CASE("a write that fails midway leaves the previous checkpoint and no partial file", "[checkpoint]") {
  TempDir dir;
  const ParamTable table(tiny());
  CheckpointDir ckpts(dir.path.string(), 2);
  ckpts.save(table, sample_checkpoint(table, 10, 1));
  Checkpoint broken = sample_checkpoint(table, 20, 1);
  broken.exp_avg.pop_back();  // the write refuses before anything reaches the directory
  CHECK_THROWS(ckpts.save(table, broken));
  CHECK_FALSE(fs::exists(dir / checkpoint_file_name(20)));
  CHECK(read_checkpoint(resolve_resume_path(dir.path.string()), table).state.step == 10);
}
