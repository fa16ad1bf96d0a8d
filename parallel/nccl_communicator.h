// nccl_communicator.h — collectives between GPUs over NCCL.
//
// NCCL runs on its own stream so that gradient all-reduces overlap the rest of
// backward on the compute stream. Each collective first makes the comm stream
// wait on an event recorded on the compute stream (the comm stream must never
// read what compute has not finished writing), and records start/done events
// that time it. The comm stream has the device's highest priority so NCCL's
// kernels are scheduled between backward's.
//
// Ordering is on the device, not the host: a request's wait() (and wait_all)
// makes the compute stream wait on the collective's done event
// (cudaStreamWaitEvent) and returns at once, so the host queues the optimizer
// and the next step while the reduction runs. The host polls only for the
// watchdog (its thread queries each outstanding done event) and for timing
// (times are read once their events have completed, possibly a step late:
// deferred_times.h). Exceptions: barrier() blocks the host (it is a host
// barrier), all_reduce_host synchronises the comm stream (its result is on
// the host). Events come from pools (cuda_handles.h), never one per
// collective: ordering events are timing-free, start/done/compute marks
// time. A dead peer surfaces as an async NCCL error at the next wait()/test()
// or as the watchdog's abort.
//
// One process per GPU: the NCCL unique id is made by rank 0 and broadcast over
// MPI by the bootstrap (parallel/bootstrap.h); with world size 1 no MPI is needed.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <memory>

#include "parallel/comm_options.h"
#include "parallel/communicator.h"

namespace vitscale {

using NcclUniqueIdBytes = std::array<char, 128>;  // ncclUniqueId, kept opaque for the bootstrap
NcclUniqueIdBytes make_nccl_unique_id();

class NcclCommunicator final : public Communicator {
 public:
  // Blocks until every rank has joined. compute_stream: the backend's stream.
  NcclCommunicator(int rank, int world_size, const NcclUniqueIdBytes& id, int device, cudaStream_t compute_stream,
                   const CommOptions& options = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override;
  int world_size() const override;
  std::string name() const override;
  void abort() noexcept override;

  CommRequest all_reduce(TensorView data) override;
  CommRequest reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) override;
  CommRequest all_gather(TensorView data, std::span<const std::int64_t> counts) override;
  CommRequest broadcast(TensorView data, int root) override;
  CommRequest barrier() override;
  void all_reduce_host(std::span<double> values, HostReduce op) override;
  // Orders the compute stream after every request (no host wait). Exposed =
  // from the compute stream reaching this call to the comm stream finishing
  // its last collective, measured with events (the host itself runs ahead of
  // the GPU, so its own wait would say nothing); returned once readable, so
  // a step's figure may arrive with a later call.
  double wait_all(std::span<CommRequest> requests) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace vitscale
