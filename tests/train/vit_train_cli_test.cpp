// vit_train_cli_test.cpp — the vit_train program as users run it: bad input
// ends with one clear line and a non-zero exit; SIGTERM leaves a checkpoint and
// exit status 143; SIGKILL in the middle of checkpoint writes never leaves
// `latest` pointing at a broken file.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "train/checkpoint.h"
#include "train_util.h"

#ifndef VIT_TRAIN_EXE
#error "VIT_TRAIN_EXE must name the vit_train binary (tests/train/tests.cmake)"
#endif

extern char** environ;

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;
namespace fs = std::filesystem;

namespace {

// A running vit_train with stdout/stderr in files.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
    std::vector<std::string> all = {VIT_TRAIN_EXE};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error(std::string("cannot start ") + VIT_TRAIN_EXE);
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  // The raw wait status, or -1 on timeout (the child is then killed).
  int wait(double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        return st;
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

Outcome run_vit_train(const std::vector<std::string>& args, const TempDir& dir, double timeout_s = 120) {
  Outcome o;
  {
    Child c(args, dir / "stdout.txt", dir / "stderr.txt");
    const int st = c.wait(timeout_s);
    REQUIRE(st != -1);       // no hang
    REQUIRE(WIFEXITED(st));  // no crash
    o.exit_code = WEXITSTATUS(st);
  }
  o.out = slurp(dir / "stdout.txt");
  o.err = slurp(dir / "stderr.txt");
  return o;
}

// Waits until the JSONL file holds a record of `event` (false on timeout).
bool wait_for_event(const std::string& jsonl, const std::string& event, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (slurp(jsonl).find("\"event\":\"" + event + "\"") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Starts vit_train, sends SIGTERM once it has logged a training step, and
// returns the raw wait status (-1: it did not end within 60 s).
int sigterm_after_first_step(const std::vector<std::string>& args, const TempDir& dir, const std::string& jsonl) {
  Child c(args, dir / "stdout.txt", dir / "stderr.txt");
  REQUIRE(wait_for_event(jsonl, "train", 60));
  c.signal(SIGTERM);
  return c.wait(60);
}

std::vector<std::string> tiny_synthetic_flags() {
  return {"--dataset",
          "synthetic",
          "--synthetic-train",
          "512",
          "--synthetic-test",
          "128",
          "--synthetic-image-size",
          "16",
          "--image-size",
          "16",
          "--patch-size",
          "4",
          "--dim",
          "32",
          "--depth",
          "2",
          "--heads",
          "2",
          "--mlp-dim",
          "64",
          "--train-batch-size",
          "32",
          "--device",
          "cpu",
          "--threads",
          "1",
          "--steps-per-print",
          "1"};
}

// Sets an environment variable for the children started in its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

void check_one_line_error(const Outcome& o, const std::string& expected) {
  INFO("stderr: " << o.err);
  CHECK(o.exit_code != 0);
  CHECK(o.err.rfind("vit_train: error: ", 0) == 0);
  CHECK(std::count(o.err.begin(), o.err.end(), '\n') == 1);
  CHECK(o.err.find("terminate called") == std::string::npos);
  CHECK_THAT(o.err, Catch::Contains(expected));
}

}  // namespace

TEST_CASE("vit_train refuses bad input with one line and a non-zero exit", "[cli]") {
  TempDir dir("cli_bad");
  SECTION("an impossible value names the flag") {
    check_one_line_error(run_vit_train({"--lr", "-1"}, dir), "optimizer.params.lr (--lr) must be positive");
  }
  SECTION("an unknown flag") {
    const Outcome o = run_vit_train({"--learning-rate", "1"}, dir);
    CHECK(o.exit_code == 2);
    check_one_line_error(o, "--learning-rate");
  }
  SECTION("a value of the wrong type") {
    const Outcome o = run_vit_train({"--epochs", "many"}, dir);
    CHECK(o.exit_code == 2);
    check_one_line_error(o, "--epochs");
  }
  SECTION("an unknown config key is named") {
    std::ofstream(dir / "ds.json") << R"({"train_batch_size": 64, "zero_optimization": {"stage": 0, "overlap": true}})";
    check_one_line_error(run_vit_train({"--config", dir / "ds.json"}, dir), "unknown key 'zero_optimization.overlap'");
  }
  SECTION("a config that is not JSON") {
    std::ofstream(dir / "bad.json") << "{\"train_batch_size\": 64,";
    check_one_line_error(run_vit_train({"--config", dir / "bad.json"}, dir), "not valid JSON");
  }
  SECTION("a missing config file") {
    check_one_line_error(run_vit_train({"--config", dir / "none.json"}, dir), "cannot open the config file");
  }
  SECTION("contradicting batch sizes") {
    check_one_line_error(
        run_vit_train({"--train-batch-size", "100", "--micro-batch-size", "16", "--gradient-accumulation-steps", "2"},
                      dir),
        "contradict");
  }
  SECTION("a missing dataset says where it looked") {
    check_one_line_error(run_vit_train({"--dataset", "cifar10", "--data-dir", dir / "no-cifar"}, dir),
                         dir / "no-cifar");
  }
  SECTION("bf16 on the CPU") {
    check_one_line_error(run_vit_train({"--bf16", "--device", "cpu"}, dir), "bf16.enabled (--bf16)");
  }
  SECTION("CUDA graphs on the CPU") {
    check_one_line_error(run_vit_train({"--cuda-graphs", "--device", "cpu"}, dir),
                         "runtime.cuda_graphs (--cuda-graphs)");
  }
  SECTION("a missing checkpoint to resume from") {
    check_one_line_error(run_vit_train({"--resume", dir / "nothing-here"}, dir), "no such checkpoint");
  }
  SECTION("a config path that is a directory is named") {
    check_one_line_error(run_vit_train({"--config", dir.path.string()}, dir),
                         dir.path.string() + ": is a directory, not a config file");
  }
  SECTION("a negative seed is refused, as the JSON key refuses it") {
    const Outcome o = run_vit_train({"--seed", "-1", "--print-config"}, dir);
    CHECK(o.exit_code == 2);
    check_one_line_error(o, "--seed: must be a non-negative integer, got -1");
    std::ofstream(dir / "seed.json") << R"({"training": {"seed": -1}})";
    check_one_line_error(run_vit_train({"--config", dir / "seed.json", "--print-config"}, dir), "training.seed");
  }
  SECTION("an image size of 0 is refused (leave it out for the preset's)") {
    check_one_line_error(run_vit_train({"--image-size", "0", "--print-config"}, dir),
                         "model.image_size (--image-size) must be in [1, 4096], got 0");
  }
  SECTION("negative epochs are refused even when --max-steps decides the length") {
    check_one_line_error(run_vit_train({"--epochs", "-3", "--max-steps", "5", "--print-config"}, dir),
                         "training.epochs (--epochs) must be at least 0, got -3");
  }
  SECTION("a checkpoint directory that takes no files fails before step 1") {
    // /proc exists and refuses new files, for root too (a chmod would not stop root).
    std::vector<std::string> args = tiny_synthetic_flags();
    args.insert(args.end(), {"--max-steps", "5", "--save-dir", "/proc", "--metrics-out", dir / "m.jsonl"});
    const Outcome o = run_vit_train(args, dir);
    check_one_line_error(o, "/proc: cannot write in the checkpoint directory");
    CHECK(o.out.find("step ") == std::string::npos);  // no training step ran
  }
  SECTION("a metrics file that cannot be opened fails before step 1") {
    std::vector<std::string> args = tiny_synthetic_flags();
    args.insert(args.end(), {"--max-steps", "5", "--metrics-out", dir / "no-such-dir/m.jsonl"});
    const Outcome o = run_vit_train(args, dir);
    check_one_line_error(o, "cannot open the metrics file");
    CHECK(o.out.find("step ") == std::string::npos);
  }
  SECTION("an unknown VITSCALE_CPU_GEMM or VITSCALE_CPU_ATTENTION fails at start-up, not at the first call") {
    for (auto [variable, value, message] :
         {std::tuple{"VITSCALE_CPU_GEMM", "avx9000",
                     "VITSCALE_CPU_GEMM=avx9000: unknown (expected openblas, avx2 or avx512)"},
          std::tuple{"VITSCALE_CPU_ATTENTION", "sse9",
                     "VITSCALE_CPU_ATTENTION=sse9: unknown (expected baseline, avx2 or avx512)"}}) {
      CAPTURE(variable);
      const ScopedEnv kernel(variable, value);
      std::vector<std::string> args = tiny_synthetic_flags();
      args.insert(args.end(), {"--max-steps", "5"});
      const Outcome o = run_vit_train(args, dir);
      check_one_line_error(o, message);
      CHECK(o.out.find("model:") == std::string::npos);  // before the model is built
    }
  }
  SECTION("a corrupted checkpoint") {
    std::ofstream(dir / "ckpt.safetensors") << "not a checkpoint at all";
    check_one_line_error(run_vit_train({"--resume", dir / "ckpt.safetensors"}, dir), "ckpt.safetensors");
  }
}

TEST_CASE("vit_train --help and --print-config succeed", "[cli]") {
  TempDir dir("cli_help");
  const Outcome help = run_vit_train({"--help"}, dir);
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("--train-batch-size") && Catch::Contains("[zero_optimization.stage]"));
  const Outcome printed = run_vit_train({"--print-config", "--lr", "0.003"}, dir);
  CHECK(printed.exit_code == 0);
  CHECK(nlohmann::json::parse(printed.out)["optimizer"]["params"]["lr"] == 0.003);
}

TEST_CASE("the wall-clock breakdown times every phase of the step, the batch upload apart from forward", "[cli]") {
  TempDir dir("cli_breakdown");
  std::vector<std::string> args = tiny_synthetic_flags();
  for (const char* a : {"--max-steps", "3", "--wall-clock-breakdown"}) args.emplace_back(a);
  args.emplace_back("--metrics-out");
  args.emplace_back(dir / "m.jsonl");
  const Outcome o = run_vit_train(args, dir);
  INFO("stderr: " << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK_THAT(o.out, Catch::Contains("data wait") && Catch::Contains("upload"));
  std::ifstream in(dir / "m.jsonl");
  int train_records = 0;
  for (std::string line; std::getline(in, line);) {
    const auto r = nlohmann::json::parse(line);
    if (r["event"] != "train") continue;
    ++train_records;
    const auto& t = r.at("time_ms");
    double sum = 0;
    for (const char* phase : {"data", "upload", "forward", "backward", "comm", "optimizer"}) {
      INFO(phase);
      REQUIRE(t.contains(phase));
      CHECK(t[phase].get<double>() >= 0.0);
      sum += t[phase].get<double>();
    }
    CHECK(t["forward"].get<double>() > 0.0);
    CHECK(t["total"].get<double>() == Approx(sum).epsilon(1e-9));
  }
  CHECK(train_records == 3);
}

TEST_CASE("SIGTERM mid-run: checkpoint at the next step boundary, exit 143, resumable", "[cli][signal]") {
  TempDir dir("cli_sigterm");
  std::vector<std::string> args = tiny_synthetic_flags();
  for (const std::string& a : {std::string("--max-steps"), std::string("100000"), std::string("--save-dir"),
                               dir / "ckpt", std::string("--metrics-out"), dir / "m.jsonl"})
    args.push_back(a);
  const int status = sigterm_after_first_step(args, dir, dir / "m.jsonl");
  INFO(slurp(dir / "stdout.txt") << slurp(dir / "stderr.txt"));
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGTERM);
  CHECK_THAT(slurp(dir / "stdout.txt"), Catch::Contains("interrupted by signal 15"));
  const auto records = read_jsonl(dir / "m.jsonl");
  const nlohmann::json* stopped = find_event(records, "interrupted");
  REQUIRE(stopped);
  const std::int64_t step = stopped->at("step");
  CHECK(step >= 1);
  ViTConfig vc;
  vc.image_size = 16, vc.channels = 3, vc.patch_size = 4, vc.dim = 32, vc.depth = 2, vc.heads = 2, vc.mlp_dim = 64;
  vc.num_classes = 10;
  const Checkpoint ckpt = read_checkpoint(resolve_resume_path(dir / "ckpt"), ParamTable(vc));
  CHECK(ckpt.state.step == step);
}

TEST_CASE("SIGTERM at 1 thread, resume at 2: the losses of an uninterrupted 2-thread run, bit for bit",
          "[cli][signal][threads]") {
  TempDir dir("cli_sigterm_threads");
  auto flags = [&](const char* threads, const std::string& metrics) {
    std::vector<std::string> args = tiny_synthetic_flags();
    *(std::find(args.begin(), args.end(), "--threads") + 1) = threads;
    for (const std::string& a : {std::string("--max-steps"), std::string("400"), std::string("--metrics-out"), metrics})
      args.push_back(a);
    return args;
  };
  REQUIRE(run_vit_train(flags("2", dir / "whole.jsonl"), dir).exit_code == 0);

  std::vector<std::string> interrupted = flags("1", dir / "parts.jsonl");
  interrupted.insert(interrupted.end(), {"--save-dir", dir / "ckpt"});
  const int status = sigterm_after_first_step(interrupted, dir, dir / "parts.jsonl");
  INFO(slurp(dir / "stdout.txt") << slurp(dir / "stderr.txt"));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 128 + SIGTERM);

  std::vector<std::string> resumed = flags("2", dir / "parts.jsonl");
  resumed.insert(resumed.end(), {"--save-dir", dir / "ckpt", "--resume", "auto"});
  REQUIRE(run_vit_train(resumed, dir).exit_code == 0);

  check_same_losses(dir / "whole.jsonl", dir / "parts.jsonl", 400);
}

TEST_CASE("SIGKILL during checkpoint writes never breaks the latest checkpoint", "[cli][checkpoint]") {
  // A wide model on 8x8 images: steps take milliseconds, each checkpoint
  // (~19 MB with the moments) much longer, so kills land mostly mid-write.
  TempDir dir("cli_sigkill");
  const std::vector<std::string> args = {"--dataset",
                                         "synthetic",
                                         "--synthetic-train",
                                         "64",
                                         "--synthetic-test",
                                         "16",
                                         "--synthetic-image-size",
                                         "8",
                                         "--image-size",
                                         "8",
                                         "--patch-size",
                                         "8",
                                         "--dim",
                                         "256",
                                         "--depth",
                                         "2",
                                         "--heads",
                                         "4",
                                         "--mlp-dim",
                                         "1024",
                                         "--train-batch-size",
                                         "8",
                                         "--device",
                                         "cpu",
                                         "--threads",
                                         "1",
                                         "--max-steps",
                                         "100000",
                                         "--save-every",
                                         "1",
                                         "--keep-checkpoints",
                                         "2",
                                         "--save-dir",
                                         dir / "ckpt",
                                         "--resume",
                                         "auto",
                                         "--metrics-out",
                                         dir / "m.jsonl"};
  ViTConfig vc;
  vc.image_size = 8, vc.channels = 3, vc.patch_size = 8, vc.dim = 256, vc.depth = 2, vc.heads = 4, vc.mlp_dim = 1024;
  vc.num_classes = 10;
  const ParamTable table(vc);
  std::int64_t last_step = 0;
  for (int round = 0; round < 3; ++round) {
    fs::remove(dir / "m.jsonl");  // so that the wait below sees this round's checkpoints
    {
      Child c(args, dir / "stdout.txt", dir / "stderr.txt");
      REQUIRE(wait_for_event(dir / "m.jsonl", "checkpoint", 60));
      std::this_thread::sleep_for(std::chrono::milliseconds(150 + 170 * round));
      c.signal(SIGKILL);
      REQUIRE(c.wait(30) != -1);
    }
    INFO("round " << round << ": " << slurp(dir / "stderr.txt"));
    // `latest` names a complete checkpoint, and every numbered file is complete.
    const Checkpoint latest = read_checkpoint(resolve_resume_path(dir / "ckpt"), table);
    CHECK(latest.state.step >= last_step);
    last_step = latest.state.step;
    for (const auto& e : fs::directory_iterator(dir.path / "ckpt")) {
      const std::string name = e.path().filename().string();
      if (name.rfind("ckpt-", 0) == 0) CHECK_NOTHROW(read_checkpoint(e.path().string(), table));
    }
  }
  CHECK(last_step >= 1);
}
