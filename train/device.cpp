#include "train/device.h"

#ifdef VITSCALE_HAVE_CUDA
#include "runtime/cuda_backend.h"
#endif

namespace vitscale::train {

namespace {

int visible_gpus() {
#ifdef VITSCALE_HAVE_CUDA
  return cuda_device_count();
#else
  return 0;
#endif
}

}  // namespace

std::string resolve_device(const std::string& requested) {
  if (requested == "auto") return visible_gpus() > 0 ? "cuda" : "cpu";
  return requested;
}

std::unique_ptr<Backend> make_backend(const TrainConfig& config, int cuda_device) {
  const std::string device = resolve_device(config.device);
  if (device == "cpu") {
    if (config.bf16)
      throw ConfigError("bf16.enabled (--bf16) needs a GPU but --device " + config.device +
                        " resolved to the CPU, which computes in fp32");
    return make_cpu_backend(config.threads);
  }
  if (device != "cuda") throw ConfigError("runtime.device (--device) must be cpu, cuda or auto, got '" + device + "'");
#ifdef VITSCALE_HAVE_CUDA
  const int count = cuda_device_count();
  if (count == 0) throw ConfigError("runtime.device (--device) cuda: no CUDA device is visible on this machine");
  return make_cuda_backend(cuda_device % count, config.bf16 ? DType::bf16 : DType::f32, config.tf32);
#else
  (void)cuda_device;
  throw ConfigError("runtime.device (--device) cuda: this vit_train was built without CUDA (configure with "
                    "-DVITSCALE_WITH_CUDA=ON on a machine with the CUDA toolkit)");
#endif
}

}  // namespace vitscale::train
