#include "parallel/communicator.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace vitscale {

const char* comm_op_name(CommOp op) {
  switch (op) {
    case CommOp::all_reduce:
      return "all_reduce";
    case CommOp::reduce_scatter:
      return "reduce_scatter";
    case CommOp::all_gather:
      return "all_gather";
    case CommOp::broadcast:
      return "broadcast";
    case CommOp::barrier:
      return "barrier";
    case CommOp::host_all_reduce:
      return "host_all_reduce";
  }
  return "?";
}

CommRequest& CommRequest::operator=(CommRequest&& other) noexcept {
  if (this != &other) {
    wait_quietly();
    impl_ = std::move(other.impl_);
    waited_ = std::exchange(other.waited_, false);
  }
  return *this;
}

CommRequest::~CommRequest() { wait_quietly(); }

void CommRequest::wait_quietly() noexcept {
  if (!impl_ || waited_) return;
  try {
    impl_->wait();
  } catch (const std::exception& e) {
    // Already unwinding from the failure that left it unwaited; say so, but do
    // not throw from a destructor.
    std::fprintf(stderr, "%s\n", e.what());
  }
  waited_ = true;
}

bool CommRequest::test() {
  if (done()) return true;
  if (impl_->test()) waited_ = true;
  return waited_;
}

void CommRequest::wait() {
  if (done()) return;
  impl_->wait();
  waited_ = true;
}

namespace {

class CompletedRequest final : public CommRequest::Impl {
 public:
  explicit CompletedRequest(double busy) : busy_(busy) {}
  bool test() override { return true; }
  void wait() override {}
  double busy_seconds() const override { return busy_; }

 private:
  double busy_;
};

}  // namespace

CommRequest completed_request(double busy_seconds) {
  return CommRequest(std::make_unique<CompletedRequest>(busy_seconds));
}

double Communicator::wait_all(std::span<CommRequest> requests) {
  // On the CPU the compute submitted so far is already done when we get here,
  // so the host's wait is the exposed time.
  const auto t0 = std::chrono::steady_clock::now();
  for (CommRequest& r : requests) r.wait();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_counts(const Communicator& comm, const char* op, std::span<const std::int64_t> counts, std::int64_t total) {
  const auto where = [&] { return "rank " + std::to_string(comm.rank()) + ": " + op + ": "; };
  if (static_cast<int>(counts.size()) != comm.world_size())
    throw std::invalid_argument(where() + std::to_string(counts.size()) + " per-rank counts for world size " +
                                std::to_string(comm.world_size()));
  std::int64_t sum = 0;
  for (std::int64_t c : counts) {
    if (c < 0) throw std::invalid_argument(where() + "negative count " + std::to_string(c));
    sum += c;
  }
  if (sum != total)
    throw std::invalid_argument(where() + "counts sum to " + std::to_string(sum) + " but the buffer holds " +
                                std::to_string(total) + " elements");
}

}  // namespace vitscale
