#include "train/step_graphs.h"

#include <array>

#include "train/train_config.h"

#ifdef VITSCALE_HAVE_CUDA
#include "runtime/cuda_backend.h"
#endif

namespace vitscale::train {

#ifdef VITSCALE_HAVE_CUDA

struct StepGraphs::Impl {
  CudaBackend* backend = nullptr;
  std::array<int, 3> uses{};  // per phase: 0 → eager, 1 → capture, then replay
};

StepGraphs::StepGraphs(Backend& backend) : impl_(std::make_unique<Impl>()) {
  impl_->backend = dynamic_cast<CudaBackend*>(&backend);
  if (!impl_->backend)
    throw ConfigError("runtime.cuda_graphs (--cuda-graphs) needs the CUDA backend; this run's backend is " +
                      backend.name());
}

void StepGraphs::run(Phase phase, const std::function<void()>& body, const AdamWHyper* hyper) {
  const int slot = static_cast<int>(phase);
  int& uses = impl_->uses[static_cast<std::size_t>(slot)];
  CudaBackend& be = *impl_->backend;
  if (uses == 0) {
    body();  // eager: sizes scratch, uploads the segment table, writes AdamW's scalars itself
    ++uses;
    return;
  }
  if (uses == 1) {
    be.begin_capture();
    try {
      body();
    } catch (...) {
      try {
        be.end_capture(slot);  // leave the stream out of capture mode before the error travels on
      } catch (...) {
      }
      throw;
    }
    be.end_capture(slot);  // capturing ran nothing: the replay below does the work
    ++uses;
  }
  if (hyper) be.set_adamw_hyper(*hyper);
  be.replay(slot);
}

#else  // no CUDA in this build

struct StepGraphs::Impl {};

StepGraphs::StepGraphs(Backend&) {
  throw ConfigError("runtime.cuda_graphs (--cuda-graphs): this vit_train was built without CUDA");
}

void StepGraphs::run(Phase, const std::function<void()>& body, const AdamWHyper*) { body(); }

#endif

StepGraphs::~StepGraphs() = default;

}  // namespace vitscale::train
