// cuda_handles.h — RAII owners for CUDA streams, events, event pools and graphs.
//
// Move-only; the destructor releases the handle and never throws (errors at
// teardown are ignored: the context may already be gone at process exit).
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/handle_pool.h"

namespace vitscale::cuda {

class Stream {
 public:
  // Non-blocking: never implicitly synchronises with the legacy default stream,
  // which also makes it capturable into a CUDA graph.
  Stream() { VS_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), std::string("create stream")); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  // timing = false: a pure ordering event (cheaper record/wait).
  explicit Event(bool timing = true) {
    VS_CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming),
                  std::string("create event"));
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s) { VS_CUDA_CHECK(cudaEventRecord(e_, s), std::string("record event")); }
  void synchronize() const { VS_CUDA_CHECK(cudaEventSynchronize(e_), std::string("synchronize event")); }
  // Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms_since(const Event& start) const {
    float ms = 0.f;
    VS_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_), std::string("event elapsed time"));
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

// Pooled events of one kind (handle_pool.h): ordering events
// (cudaEventDisableTiming: record and wait are cheaper, and nothing reads a
// time from them) or timing events, made once and reused, never per
// collective or per batch. A leased event may be re-recorded only after every
// wait on its previous record has been enqueued (cudaStreamWaitEvent binds
// the record current at the call) and every host query of it is done.
template <unsigned kFlags>
struct EventTraits {
  using Handle = cudaEvent_t;
  static cudaEvent_t create() {
    cudaEvent_t e = nullptr;
    VS_CUDA_CHECK(cudaEventCreateWithFlags(&e, kFlags), "create event (flags " + std::to_string(kFlags) + ")");
    return e;
  }
  static void destroy(cudaEvent_t e) noexcept { cudaEventDestroy(e); }
};
using OrderingEventTraits = EventTraits<cudaEventDisableTiming>;
using TimingEventTraits = EventTraits<cudaEventDefault>;
using OrderingEventPool = HandlePool<OrderingEventTraits>;
using TimingEventPool = HandlePool<TimingEventTraits>;

// A captured graph and its executable instance.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&& o) noexcept : graph_(std::exchange(o.graph_, nullptr)), exec_(std::exchange(o.exec_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept {
    std::swap(graph_, o.graph_);
    std::swap(exec_, o.exec_);
    return *this;
  }
  ~Graph() { reset(); }

  // Takes ownership of a captured graph and instantiates it.
  void adopt(cudaGraph_t g) {
    reset();
    graph_ = g;
    VS_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0), std::string("instantiate CUDA graph"));
  }
  void launch(cudaStream_t s) const { VS_CUDA_CHECK(cudaGraphLaunch(exec_, s), std::string("launch CUDA graph")); }
  bool ready() const { return exec_ != nullptr; }
  void reset() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
  }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace vitscale::cuda
