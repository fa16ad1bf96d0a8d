#include "train/step_engine.h"

#include <cstdio>
#include <stdexcept>

#include "runtime/adamw_optimizer.h"

namespace vitscale::train {

namespace {

class LocalEngine final : public StepEngine {
 public:
  explicit LocalEngine(ViTModel& model) : model_(model), adamw_(model.backend(), model.table()) {}

  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string describe() const override {
    char line[128];
    std::snprintf(line, sizeof line, "single process: AdamW over %lld parameters, %.2f MiB of moments",
                  static_cast<long long>(model_.table().total_numel()),
                  static_cast<double>(adamw_.bytes()) / (1024.0 * 1024.0));
    return line;
  }

  void begin_micro_step(bool) override {}
  GradReadyListener* listener() override { return nullptr; }
  double finish() override { return 0.0; }
  double optimizer_step(const AdamWHyper& hyper) override {
    adamw_.step(model_.params(), model_.grads(), hyper);
    model_.sync_compute_params();
    return 0.0;
  }
  float grad_norm() const override { return adamw_.read_grad_norm(); }

  std::size_t optimizer_bytes() const override { return adamw_.bytes(); }
  void gather_optimizer_state(std::vector<float>& m, std::vector<float>& v) override {
    const auto n = static_cast<std::size_t>(adamw_.count());
    m.resize(n);
    v.resize(n);
    model_.backend().copy_to_host(m.data(), adamw_.exp_avg().data, n * sizeof(float));
    model_.backend().copy_to_host(v.data(), adamw_.exp_avg_sq().data, n * sizeof(float));
  }
  void load_optimizer_state(std::span<const float> m, std::span<const float> v) override {
    const auto n = static_cast<std::size_t>(adamw_.count());
    if (m.size() != n || v.size() != n)
      throw std::invalid_argument("optimizer state has " + std::to_string(m.size()) + "/" + std::to_string(v.size()) +
                                  " values, the optimizer " + std::to_string(n));
    model_.backend().copy_to_device(adamw_.exp_avg().data, m.data(), n * sizeof(float));
    model_.backend().copy_to_device(adamw_.exp_avg_sq().data, v.data(), n * sizeof(float));
    model_.backend().synchronize();  // the host spans may go away after we return
  }
  void all_reduce_sum(std::span<double>) override {}

 private:
  ViTModel& model_;
  AdamWOptimizer adamw_;
};

}  // namespace

std::unique_ptr<StepEngine> make_local_engine(ViTModel& model) { return std::make_unique<LocalEngine>(model); }

}  // namespace vitscale::train
