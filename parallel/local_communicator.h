// local_communicator.h — the communicator of a world of one.
//
// Every collective over one rank is the identity, except a reduce-scatter whose
// send and receive buffers differ: that is a device copy on the backend's
// compute stream. Used when vit_train runs without a launcher on the CPU, so
// the trainer's data-parallel path is the same code at every world size.
#pragma once

#include "parallel/communicator.h"
#include "runtime/backend.h"

namespace vitscale {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(Backend& backend) : backend_(backend) {}

  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string name() const override { return "local"; }

  CommRequest all_reduce(TensorView data) override;
  CommRequest reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) override;
  CommRequest all_gather(TensorView data, std::span<const std::int64_t> counts) override;
  CommRequest broadcast(TensorView data, int root) override;
  CommRequest barrier() override;
  void all_reduce_host(std::span<double> values, HostReduce op) override {}

 private:
  Backend& backend_;
};

}  // namespace vitscale
