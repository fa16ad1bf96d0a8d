// cuda_stream_gate.h — holds a CUDA stream at one point until the test opens
// the gate: a host function enqueued on the stream spins on a flag, so work
// and events enqueued after it are pending for sure, however fast the GPU is.
// The destructor opens the gate and waits for the stream, so a failing check
// never leaves the stream blocked. (tests/cuda and tests/parallel use it.)
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

namespace vitscale::testing {

class StreamGate {
 public:
  explicit StreamGate(cudaStream_t stream) : stream_(stream) {
    const cudaError_t rc = cudaLaunchHostFunc(stream_, &StreamGate::hold, &open_);
    if (rc != cudaSuccess)
      throw std::runtime_error(std::string("StreamGate: cudaLaunchHostFunc: ") + cudaGetErrorString(rc));
  }
  ~StreamGate() {
    open();
    cudaStreamSynchronize(stream_);
  }
  StreamGate(const StreamGate&) = delete;
  StreamGate& operator=(const StreamGate&) = delete;
  void open() { open_.store(true); }

 private:
  static void hold(void* flag) {
    auto* open = static_cast<std::atomic<bool>*>(flag);
    while (!open->load()) std::this_thread::yield();
  }
  cudaStream_t stream_;
  std::atomic<bool> open_{false};
};

}  // namespace vitscale::testing
