// probe_test.cpp — the first thing tools/gpu_check.sh runs on a GPU
// (`test_cuda "[probe]"`): how the runtime reports a pending event. If
// cudaEventQuery's cudaErrorNotReady stays behind as the thread's last error,
// the next VS_LAUNCH_CHECK (cudaGetLastError) throws it from an unrelated
// kernel; the NCCL communicator polls events during backward, so this decides
// whether data-parallel training can run at all. The WARN line records what
// this runtime does; the checks prove our helpers leave no error either way.
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_handles.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda_stream_gate.h"

using namespace vitscale;

TEST_CASE("probe: a pending event's not-ready status and the thread's last error", "[cuda][probe]") {
  VS_REQUIRE_GPU();
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  cuda::Stream stream;
  cuda::Event done(false);
  {
    testing::StreamGate gate(stream.get());
    done.record(stream.get());  // behind the gate: pending until it opens

    const cudaError_t raw = cudaEventQuery(done.get());
    const cudaError_t sticky = cudaPeekAtLastError();
    WARN(
        "probe: cudaEventQuery on a pending event returns "
        << cudaGetErrorName(raw) << "; cudaPeekAtLastError after it returns " << cudaGetErrorName(sticky)
        << (sticky == cudaErrorNotReady ? " (the status sticks: it must be cleared)" : " (the status does not stick)"));
    CHECK(raw == cudaErrorNotReady);
    cuda::forget_ignored_error(raw);
    CHECK(cudaPeekAtLastError() == cudaSuccess);

    CHECK(cuda::query_event(done.get()) == cudaErrorNotReady);
    CHECK(cudaGetLastError() == cudaSuccess);  // what VS_LAUNCH_CHECK reads after a poll
    gate.open();
  }
  CHECK(cuda::query_event(done.get()) == cudaSuccess);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("probe: forget_ignored_error keeps an unrelated error", "[cuda][probe]") {
  VS_REQUIRE_GPU();
  // An invalid argument is recorded as the last error; a NotReady cleanup must not eat it.
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, 16) == cudaSuccess);
  const cudaError_t bad = cudaMemset(p, 0, std::size_t{1} << 62);  // an impossible size
  cudaFree(p);
  REQUIRE(bad != cudaSuccess);
  cuda::forget_ignored_error(cudaErrorNotReady);  // not the last error: must not clear it
  CHECK(cudaPeekAtLastError() == bad);
  (void)cudaGetLastError();
}
