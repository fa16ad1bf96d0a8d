// mpi_communicator.h — collectives for CPU ranks over MPI (Open MPI, MPICH).
//
// Overlap on the CPU needs someone to make progress while the compute thread
// is busy in backward. Three ways, all measured (docs/results/overlap_cpu.md):
//   * thread (comm_thread, the default): one communication thread owns the
//     communicator and runs the blocking collectives (MPI_Allreduce, ...) in
//     launch order. MPI's progress loop runs the whole time an operation is in
//     flight, so the transfer never stalls — and busy-waits on a core whenever
//     a peer is late.
//   * polling (polling_thread): the thread starts MPI-3 non-blocking
//     collectives and tests them every mpi_poll_us, sleeping in between:
//     progress without a spinning core while compute runs; once the host
//     blocks in wait() it tests back to back.
//   * nonblocking: MPI_Iallreduce & co. issued from the calling thread. Open
//     MPI's libnbc only advances them inside MPI calls, so the reducer tests its
//     requests at each ready signal; between those calls nothing moves.
// The communicator works on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN;
// every return code is checked and reported with the rank, the op and its size.
// MPI must be initialised (MpiSession) before and finalised after its lifetime.
#pragma once

#include <memory>

#include "parallel/comm_options.h"
#include "parallel/communicator.h"

namespace vitscale {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommOptions& options = {});
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override;
  int world_size() const override;
  std::string name() const override;

  CommRequest all_reduce(TensorView data) override;
  CommRequest reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) override;
  CommRequest all_gather(TensorView data, std::span<const std::int64_t> counts) override;
  CommRequest broadcast(TensorView data, int root) override;
  CommRequest barrier() override;
  void all_reduce_host(std::span<double> values, HostReduce op) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace vitscale
