// nccl_communicator.h — collectives between GPUs over NCCL.
//
// NCCL runs on its own stream so that gradient all-reduces overlap the rest of
// backward on the compute stream. Each collective first makes the comm stream
// wait on an event recorded on the compute stream (the comm stream must never
// read what compute has not finished writing), and records start/done events
// that time it and tell the host when it is complete. The comm stream has the
// device's highest priority so NCCL's kernels are scheduled between backward's.
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
  // Exposed = from the compute stream reaching this call to the comm stream
  // finishing its last collective, measured with events (the host itself runs
  // ahead of the GPU, so its own wait would say nothing).
  double wait_all(std::span<CommRequest> requests) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace vitscale
