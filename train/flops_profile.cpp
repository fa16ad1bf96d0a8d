#include "train/flops_profile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "runtime/vit_flops.h"

namespace vitscale::train {

std::string FlopsProfile::describe() const {
  char line[400];
  std::snprintf(line, sizeof line,
                "flops_profiler: step %lld: %.4g GFLOP per rank (forward %.4g, backward %.4g; GEMMs and attention, "
                "%lld images) in %.2f ms: %.4g GFLOP/s per rank, %.4g GFLOP/s over %d rank%s",
                static_cast<long long>(step), flops() * 1e-9, forward * 1e-9, backward * 1e-9,
                static_cast<long long>(images_per_rank), seconds * 1e3, rate() * 1e-9, rate() * world_size * 1e-9,
                world_size, world_size == 1 ? "" : "s");
  return line;
}

nlohmann::ordered_json FlopsProfile::to_json() const {
  return {{"step", step},
          {"images_per_rank", images_per_rank},
          {"world_size", world_size},
          {"forward_flops", forward},
          {"backward_flops", backward},
          {"step_s", seconds},
          {"flops_per_s", rate()}};
}

FlopsProfile flops_profile(const ViTConfig& model, std::int64_t images_per_rank, int world_size, std::int64_t step,
                           double seconds) {
  const ViTFlops per_image = vit_flops(model);
  FlopsProfile p;
  p.step = step;
  p.images_per_rank = images_per_rank;
  p.world_size = world_size;
  p.forward = per_image.forward() * static_cast<double>(images_per_rank);
  p.backward = per_image.backward() * static_cast<double>(images_per_rank);
  p.seconds = seconds;
  return p;
}

void write_flops_profile(const FlopsProfile& profile, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open flops_profiler.output_file: " + std::strerror(errno));
  out << profile.describe() << '\n';
  if (!out.flush()) throw std::runtime_error(path + ": cannot write flops_profiler.output_file");
}

}  // namespace vitscale::train
