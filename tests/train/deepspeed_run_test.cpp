// deepspeed_run_test.cpp — DeepSpeed's monitors and profiler in a real (tiny)
// run: csv_monitor's CSV beside the JSONL, flops_profiler's count and rate.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "runtime/backend.h"
#include "runtime/vit_flops.h"
#include "train/trainer.h"
#include "train_util.h"

using namespace vitscale;
using namespace vitscale::train;
using namespace vitscale::train::testing;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("csv_monitor writes the JSONL's train and eval records as CSV, flops_profiler reports its step",
          "[trainer][deepspeed]") {
  TempDir dir("ds_monitors");
  nlohmann::json j = tiny_synthetic_config();
  j["training"]["max_steps"] = 3;
  j["logging"] = {{"metrics_out", dir / "m.jsonl"}};
  j["csv_monitor"] = {{"enabled", true}};
  j["flops_profiler"] = {{"enabled", true},
                         {"profile_step", 2},
                         {"output_file", dir / "flops.txt"},
                         {"module_depth", -1},
                         {"detailed", true}};
  const TrainConfig config = resolve_json(j);
  REQUIRE(csv_monitor_path(config) == dir / "m.csv");  // beside the JSONL
  auto backend = make_cpu_backend(config.threads);
  StopSignal stop;
  std::ostringstream console;
  TrainerIo io;
  io.console = &console;
  io.stop = &stop;
  Trainer trainer(config, *backend, io);
  const TrainResult r = trainer.run();
  INFO(console.str());
  REQUIRE(r.outcome == TrainResult::Outcome::finished);

  // The CSV: a header, then one row per JSONL train/eval record with the same numbers.
  const std::vector<std::string> csv = read_lines(dir / "m.csv");
  REQUIRE(csv.size() == 5);  // header, 3 train steps (steps_per_print 1), 1 evaluation
  CHECK(csv[0] == "event,step,epoch,loss,lr,grad_norm,images_per_s,elapsed_s,test_acc,test_loss");
  const auto records = read_jsonl(dir / "m.jsonl");
  std::vector<nlohmann::json> logged;
  for (const auto& rec : records)
    if (rec.at("event") == "train" || rec.at("event") == "eval") logged.push_back(rec);
  REQUIRE(logged.size() == 4);
  for (std::size_t i = 0; i < logged.size(); ++i) {
    const auto& rec = logged[i];
    std::string expected =
        rec.at("event").get<std::string>() + "," + rec.at("step").dump() + "," + rec.at("epoch").dump() + ",";
    if (rec.at("event") == "train")
      expected += rec.at("loss").dump() + "," + rec.at("lr").dump() + "," + rec.at("grad_norm").dump() + "," +
                  rec.at("images_per_s").dump() + "," + rec.at("elapsed_s").dump() + ",,";
    else
      expected += ",,,," + rec.at("elapsed_s").dump() + "," + rec.at("test_acc").dump() + "," + rec.at("test_loss").dump();
    CHECK(csv[i + 1] == expected);
  }

  // The profile: step 2's FLOPs from the model's shape, a positive rate, in the JSONL and the output file.
  const nlohmann::json* profile = find_event(records, "flops_profile");
  REQUIRE(profile);
  CHECK(profile->at("step") == 2);
  const ViTFlops per_image = vit_flops(trainer.model().config());
  CHECK(profile->at("images_per_rank") == config.train_batch_size);
  CHECK(profile->at("forward_flops").get<double>() == Approx(per_image.forward() * config.train_batch_size));
  CHECK(profile->at("backward_flops").get<double>() == Approx(per_image.backward() * config.train_batch_size));
  CHECK(profile->at("step_s").get<double>() > 0);
  CHECK(profile->at("flops_per_s").get<double>() ==
        Approx(per_image.training() * config.train_batch_size / profile->at("step_s").get<double>()));
  const std::vector<std::string> file = read_lines(dir / "flops.txt");
  REQUIRE(file.size() == 1);
  CHECK_THAT(file[0], Catch::StartsWith("flops_profiler: step 2: ") && Catch::Contains("GFLOP/s per rank"));
  CHECK_THAT(console.str(), Catch::Contains(file[0]));
  // The start-up report names the keys with no effect once.
  CHECK_THAT(console.str(), Catch::Contains("DeepSpeed keys accepted with no effect here: flops_profiler.detailed = "
                                            "true, flops_profiler.module_depth = -1 (the profile is the whole step's"));
}
