// communicator.h — the one interface every collective engine sits behind.
//
// Three engines implement it: NcclCommunicator (GPU; its own stream, ordered
// after the compute that produced the data by an event), MpiCommunicator (CPU
// ranks; a communication thread or MPI-3 non-blocking collectives, so that
// communication really overlaps compute) and LocalCommunicator (world size 1).
// The collectives themselves are always NCCL's or MPI's; this layer only
// orders, times and watches them.
//
// Every collective is asynchronous: it returns a CommRequest, a move-only
// completion handle. After wait() returns, the result is visible to any work
// later submitted to the backend's compute stream; on the CPU engines it is
// also visible to the host, on NCCL only once the compute stream has been
// synchronised (wait() orders the device and does not block the host, except
// for barrier()). A request that is destroyed unwaited is waited for (an
// in-flight buffer must not be freed under the engine; freeing device memory
// synchronises the device).
//
// Sums only: averaging over ranks is folded into the loss scale
// (grad_scale = 1 / global batch), so the sum of the ranks' gradients is
// already the global-batch mean and no extra pass over the gradients is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "runtime/tensor.h"

namespace vitscale {

enum class CommOp { all_reduce, reduce_scatter, all_gather, broadcast, barrier, host_all_reduce };
const char* comm_op_name(CommOp op);

enum class HostReduce { sum, max, min };

class CommRequest {
 public:
  // What an engine implements for one in-flight collective.
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual bool test() = 0;  // non-blocking; also drives progress where the engine needs it
    virtual void wait() = 0;  // blocks until complete; throws std::runtime_error naming rank and op
    // Seconds the engine spent on this collective (valid after completion).
    // NCCL: read without waiting; when its events are still pending the time
    // is reported by a later request of the same op instead (each counted once).
    virtual double busy_seconds() const = 0;
  };

  CommRequest() = default;
  explicit CommRequest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
  CommRequest(CommRequest&&) noexcept = default;
  CommRequest& operator=(CommRequest&& other) noexcept;
  CommRequest(const CommRequest&) = delete;
  CommRequest& operator=(const CommRequest&) = delete;
  ~CommRequest();

  bool valid() const { return impl_ != nullptr; }
  bool done() const { return !impl_ || waited_; }
  bool test();
  void wait();
  double busy_seconds() const { return impl_ ? impl_->busy_seconds() : 0.0; }

 private:
  void wait_quietly() noexcept;
  std::unique_ptr<Impl> impl_;
  bool waited_ = false;
};

// A request that is complete on creation (world size 1, empty collectives).
CommRequest completed_request(double busy_seconds = 0.0);

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string name() const = 0;  // "mpi (comm thread)", "nccl", "local"

  // data (n), in place: every rank ends with the elementwise sum over ranks.
  virtual CommRequest all_reduce(TensorView data) = 0;
  // send (Σ counts) → recv (counts[rank]): rank q receives the sum over ranks of
  // send's q-th block (blocks laid out back to back in rank order; counts may
  // differ and may be zero). recv must not overlap send.
  virtual CommRequest reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) = 0;
  // data (Σ counts), in place: rank q's block (at Σ_{p<q} counts[p]) is copied
  // to every rank.
  virtual CommRequest all_gather(TensorView data, std::span<const std::int64_t> counts) = 0;
  virtual CommRequest broadcast(TensorView data, int root) = 0;
  virtual CommRequest barrier() = 0;

  // Host memory, blocking, ordered with the other collectives: for metrics,
  // evaluation sums and start-up checks.
  virtual void all_reduce_host(std::span<double> values, HostReduce op) = 0;

  // Waits for every request and returns the exposed seconds: how long after
  // the compute submitted so far finished the last request completed (0 when
  // communication was fully hidden). On the CPU that is the host's wait; the
  // NCCL engine orders the compute stream instead of waiting and measures it
  // with events on the two streams, reported once readable (maybe a step late).
  virtual double wait_all(std::span<CommRequest> requests);

  // This rank gives up (an error on this rank): ends the communicator's
  // outstanding work at once so that nothing blocks the job's abort
  // (ncclCommAbort; MPI's collectives end with MPI_Abort). Safe from any thread.
  virtual void abort() noexcept {}
};

// Throws std::invalid_argument naming `op` and the rank when the per-rank
// counts are not world_size long, negative, or do not sum to `total`.
void check_counts(const Communicator& comm, const char* op, std::span<const std::int64_t> counts, std::int64_t total);

}  // namespace vitscale
