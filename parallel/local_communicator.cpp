#include "parallel/local_communicator.h"

#include <stdexcept>

namespace vitscale {

CommRequest LocalCommunicator::all_reduce(TensorView data) { return completed_request(); }

CommRequest LocalCommunicator::reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) {
  check_counts(*this, "reduce_scatter", counts, send.numel());
  if (recv.numel() != counts[0] || recv.dtype != send.dtype)
    throw std::invalid_argument("rank 0: reduce_scatter: receive buffer " + recv.describe() + " does not match send " +
                                send.describe());
  if (recv.data != send.data && send.numel() > 0) backend_.copy_device(recv.data, send.data, send.bytes());
  return completed_request();
}

CommRequest LocalCommunicator::all_gather(TensorView data, std::span<const std::int64_t> counts) {
  check_counts(*this, "all_gather", counts, data.numel());
  return completed_request();
}

CommRequest LocalCommunicator::broadcast(TensorView data, int root) {
  if (root != 0)
    throw std::invalid_argument("rank 0: broadcast from root " + std::to_string(root) + " in a world of 1");
  return completed_request();
}

CommRequest LocalCommunicator::barrier() { return completed_request(); }

}  // namespace vitscale
