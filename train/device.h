// device.h — --device cpu|cuda|auto to a Backend.
//
// auto picks CUDA when this build has it (VITSCALE_HAVE_CUDA) and a GPU is
// visible, else the CPU. bf16 needs CUDA: asking for it on the CPU is refused
// with one line rather than silently training in fp32.
#pragma once

#include <memory>
#include <string>

#include "runtime/backend.h"
#include "train/train_config.h"

namespace vitscale::train {

// "cpu" or "cuda": what --device resolves to on this machine.
std::string resolve_device(const std::string& requested);
// The backend for `config` (device, threads, bf16, tf32); the GPU is
// cuda_device (a process's local rank). Throws ConfigError for an impossible ask.
std::unique_ptr<Backend> make_backend(const TrainConfig& config, int cuda_device = 0);

}  // namespace vitscale::train
