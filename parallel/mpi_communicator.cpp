#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parallel/comm_watchdog.h"

namespace vitscale {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string mpi_error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<std::size_t>(len));
}

std::string failure(int rank, const char* call, std::size_t bytes, int rc) {
  return "rank " + std::to_string(rank) + ": " + call + " (" + std::to_string(bytes) +
         " bytes) failed: " + mpi_error_text(rc);
}

// Element type for MPI; reductions only on types MPI can add.
MPI_Datatype mpi_type(DType t, bool reducing, int rank, const char* op) {
  switch (t) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::i32:
      return MPI_INT32_T;
    case DType::u8:
      if (!reducing) return MPI_UINT8_T;
      break;
    case DType::bf16:
      if (!reducing) return MPI_UINT16_T;  // moved, never added
      break;
  }
  throw std::invalid_argument("rank " + std::to_string(rank) + ": " + op + ": MPI cannot sum " + dtype_name(t) +
                              " tensors");
}

int to_int(std::int64_t n, int rank, const char* op) {
  if (n < 0 || n > INT_MAX)
    throw std::invalid_argument("rank " + std::to_string(rank) + ": " + op + ": count " + std::to_string(n) +
                                " does not fit MPI's int counts; use smaller buckets");
  return static_cast<int>(n);
}

// One collective: the blocking form (for the comm thread) and the
// non-blocking form, over arrays that live as long as the operation.
struct MpiOp {
  CommOp op;
  const char* call;  // "MPI_Allreduce"
  std::size_t bytes;
  std::vector<int> counts, displs;
  std::function<int(MPI_Comm)> blocking;
  std::function<int(MPI_Comm, MPI_Request*)> nonblocking;

  // polling_thread: the non-blocking request, when it was started.
  MPI_Request request = MPI_REQUEST_NULL;
  std::chrono::steady_clock::time_point started;

  // Completion, written by the comm thread.
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int rc = MPI_SUCCESS;
  double busy = 0;
  std::uint64_t ticket = 0;
};

}  // namespace

struct MpiCommunicator::State {
  CommOptions options;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, world = 1;
  std::unique_ptr<CommWatchdog> watchdog;

  // comm_thread and polling_thread modes.
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<MpiOp>> queue;
  bool stop = false;
  std::thread thread;
  // When the engine last finished an op: busy time counts from there, so
  // collectives in flight together are not counted twice (a FIFO server).
  Clock::time_point engine_free{};
  std::atomic<int> waiters{0};  // host threads blocked in wait(): polling spins while > 0

  bool threaded() const { return options.mpi_progress != MpiProgress::nonblocking; }
  void run_blocking_thread();
  void run_polling_thread();
  void complete(MpiOp& op, int rc, double busy);
  double busy_since(Clock::time_point started, Clock::time_point done);
  CommRequest launch(std::shared_ptr<MpiOp> op);
};

namespace {

class ThreadRequest final : public CommRequest::Impl {
 public:
  ThreadRequest(std::shared_ptr<MpiOp> op, int rank, std::atomic<int>& waiters)
      : op_(std::move(op)), rank_(rank), waiters_(waiters) {}
  bool test() override {
    std::lock_guard lock(op_->mutex);
    if (op_->done) check();
    return op_->done;
  }
  void wait() override {
    ++waiters_;  // the host is blocked now: the polling thread stops sleeping between tests
    std::unique_lock lock(op_->mutex);
    op_->cv.wait(lock, [&] { return op_->done; });
    --waiters_;
    check();
  }
  double busy_seconds() const override { return op_->busy; }

 private:
  void check() const {
    if (op_->rc != MPI_SUCCESS) throw std::runtime_error(failure(rank_, op_->call, op_->bytes, op_->rc));
  }
  std::shared_ptr<MpiOp> op_;
  int rank_;
  std::atomic<int>& waiters_;
};

class NonblockingRequest final : public CommRequest::Impl {
 public:
  NonblockingRequest(std::shared_ptr<MpiOp> op, MPI_Request request, CommWatchdog& watchdog, int rank,
                     std::function<double(Clock::time_point, Clock::time_point)> busy_since)
      : op_(std::move(op)),
        request_(request),
        watchdog_(watchdog),
        rank_(rank),
        start_(Clock::now()),
        busy_since_(std::move(busy_since)) {}
  bool test() override {
    if (complete_) return true;
    int flag = 0;
    settle(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE), flag != 0);
    return complete_;
  }
  void wait() override {
    if (!complete_) settle(MPI_Wait(&request_, MPI_STATUS_IGNORE), true);
  }
  double busy_seconds() const override { return busy_; }

 private:
  void settle(int rc, bool finished) {
    if (rc != MPI_SUCCESS) {
      watchdog_.end(op_->ticket);
      complete_ = true;
      throw std::runtime_error(failure(rank_, op_->call, op_->bytes, rc));
    }
    if (!finished) return;
    busy_ = busy_since_(start_, Clock::now());  // up to when completion was seen: an upper bound
    watchdog_.end(op_->ticket);
    complete_ = true;
  }
  std::shared_ptr<MpiOp> op_;  // keeps counts/displs alive while MPI reads them
  MPI_Request request_;
  CommWatchdog& watchdog_;
  int rank_;
  Clock::time_point start_;
  std::function<double(Clock::time_point, Clock::time_point)> busy_since_;
  double busy_ = 0;
  bool complete_ = false;
};

}  // namespace

double MpiCommunicator::State::busy_since(Clock::time_point started, Clock::time_point done) {
  const Clock::time_point from = std::max(started, engine_free);
  engine_free = std::max(engine_free, done);
  return done > from ? std::chrono::duration<double>(done - from).count() : 0.0;
}

void MpiCommunicator::State::complete(MpiOp& op, int rc, double busy) {
  watchdog->end(op.ticket);
  {
    std::lock_guard lock(op.mutex);
    op.rc = rc;
    op.busy = busy;
    op.done = true;
  }
  op.cv.notify_all();
}

// comm_thread: one blocking collective after another. MPI's progress engine
// spins inside each call, so the transfer never stalls, at the price of a core
// busy-waiting whenever a peer is late.
void MpiCommunicator::State::run_blocking_thread() {
  for (;;) {
    std::shared_ptr<MpiOp> op;
    {
      std::unique_lock lock(queue_mutex);
      queue_cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;  // stop requested and nothing left
      op = std::move(queue.front());
      queue.pop_front();
    }
    const auto t0 = Clock::now();
    const int rc = op->blocking(comm);
    complete(*op, rc, seconds_since(t0));
  }
}

// polling_thread: the thread starts non-blocking collectives as they arrive
// and tests them every poll interval, sleeping in between: progress without a
// core spinning, which matters when ranks share the cores with compute.
void MpiCommunicator::State::run_polling_thread() {
  std::deque<std::shared_ptr<MpiOp>> in_flight;
  const auto poll = std::chrono::microseconds(std::max(1, options.mpi_poll_us));
  for (;;) {
    std::deque<std::shared_ptr<MpiOp>> arrived;
    {
      std::unique_lock lock(queue_mutex);
      if (in_flight.empty()) {
        queue_cv.wait(lock, [&] { return stop || !queue.empty(); });
      } else if (waiters.load() == 0) {
        // Compute is running: leave it the core between tests.
        queue_cv.wait_for(lock, poll, [&] { return stop || !queue.empty(); });
      }  // else the host waits for us: test again at once
      if (stop && queue.empty() && in_flight.empty()) return;
      arrived.swap(queue);
    }
    for (auto& op : arrived) {
      op->started = Clock::now();
      const int rc = op->nonblocking(comm, &op->request);
      if (rc != MPI_SUCCESS) {
        complete(*op, rc, 0.0);
        continue;
      }
      in_flight.push_back(std::move(op));
    }
    // Test in launch order; every MPI_Test also advances the others.
    while (!in_flight.empty()) {
      MpiOp& op = *in_flight.front();
      int flag = 0;
      const int rc = MPI_Test(&op.request, &flag, MPI_STATUS_IGNORE);
      if (rc == MPI_SUCCESS && !flag) break;
      complete(op, rc, busy_since(op.started, Clock::now()));
      in_flight.pop_front();
    }
  }
}

CommRequest MpiCommunicator::State::launch(std::shared_ptr<MpiOp> op) {
  op->ticket = watchdog->begin(comm_op_name(op->op), op->bytes);
  if (threaded()) {
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back(op);
    }
    queue_cv.notify_one();
    return CommRequest(std::make_unique<ThreadRequest>(std::move(op), rank, waiters));
  }
  MPI_Request request = MPI_REQUEST_NULL;
  const int rc = op->nonblocking(comm, &request);
  if (rc != MPI_SUCCESS) {
    watchdog->end(op->ticket);
    throw std::runtime_error(failure(rank, op->call, op->bytes, rc));
  }
  return CommRequest(std::make_unique<NonblockingRequest>(
      std::move(op), request, *watchdog, rank,
      [this](Clock::time_point started, Clock::time_point done) { return busy_since(started, done); }));
}

MpiCommunicator::MpiCommunicator(const CommOptions& options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.options = options;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw std::logic_error("MpiCommunicator: MPI is not initialised (create an MpiSession first)");
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (s.threaded() && level < MPI_THREAD_SERIALIZED)
    throw std::runtime_error(
        "MpiCommunicator: the communication thread needs MPI_THREAD_SERIALIZED or better; "
        "this MPI provides level " +
        std::to_string(level));
  if (const int rc = MPI_Comm_dup(MPI_COMM_WORLD, &s.comm); rc != MPI_SUCCESS)
    throw std::runtime_error("MPI_Comm_dup failed: " + mpi_error_text(rc));
  MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(s.comm, &s.rank);
  MPI_Comm_size(s.comm, &s.world);
  s.watchdog = std::make_unique<CommWatchdog>(s.rank, options.timeout_s,
                                              [](const std::string& message) { abort_job(message, {}); });
  if (options.mpi_progress == MpiProgress::comm_thread) s.thread = std::thread([&s] { s.run_blocking_thread(); });
  if (options.mpi_progress == MpiProgress::polling_thread) s.thread = std::thread([&s] { s.run_polling_thread(); });
}

MpiCommunicator::~MpiCommunicator() {
  State& s = *state_;
  if (s.thread.joinable()) {
    {
      std::lock_guard lock(s.queue_mutex);
      s.stop = true;
    }
    s.queue_cv.notify_one();
    s.thread.join();
  }
  s.watchdog.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && s.comm != MPI_COMM_NULL) MPI_Comm_free(&s.comm);
}

int MpiCommunicator::rank() const { return state_->rank; }
int MpiCommunicator::world_size() const { return state_->world; }
std::string MpiCommunicator::name() const {
  return std::string("mpi (progress: ") + mpi_progress_name(state_->options.mpi_progress) + ")";
}

CommRequest MpiCommunicator::all_reduce(TensorView data) {
  const int r = state_->rank;
  const MPI_Datatype type = mpi_type(data.dtype, true, r, "all_reduce");
  const int n = to_int(data.numel(), r, "all_reduce");
  if (n == 0) return completed_request();
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::all_reduce;
  op->call = "MPI_Allreduce";
  op->bytes = data.bytes();
  void* p = data.data;
  op->blocking = [=](MPI_Comm c) { return MPI_Allreduce(MPI_IN_PLACE, p, n, type, MPI_SUM, c); };
  op->nonblocking = [=](MPI_Comm c, MPI_Request* q) { return MPI_Iallreduce(MPI_IN_PLACE, p, n, type, MPI_SUM, c, q); };
  return state_->launch(std::move(op));
}

CommRequest MpiCommunicator::reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) {
  const int r = state_->rank;
  check_counts(*this, "reduce_scatter", counts, send.numel());
  if (recv.numel() != counts[static_cast<std::size_t>(r)] || recv.dtype != send.dtype)
    throw std::invalid_argument("rank " + std::to_string(r) + ": reduce_scatter: receive buffer " + recv.describe() +
                                " does not match this rank's count " +
                                std::to_string(counts[static_cast<std::size_t>(r)]));
  const MPI_Datatype type = mpi_type(send.dtype, true, r, "reduce_scatter");
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::reduce_scatter;
  op->call = "MPI_Reduce_scatter";
  op->bytes = send.bytes();
  for (std::int64_t c : counts) op->counts.push_back(to_int(c, r, "reduce_scatter"));
  const int* cnt = op->counts.data();
  const void* s = send.data;
  void* d = recv.data;
  op->blocking = [=](MPI_Comm c) { return MPI_Reduce_scatter(s, d, cnt, type, MPI_SUM, c); };
  op->nonblocking = [=](MPI_Comm c, MPI_Request* q) { return MPI_Ireduce_scatter(s, d, cnt, type, MPI_SUM, c, q); };
  return state_->launch(std::move(op));
}

CommRequest MpiCommunicator::all_gather(TensorView data, std::span<const std::int64_t> counts) {
  const int r = state_->rank;
  check_counts(*this, "all_gather", counts, data.numel());
  const MPI_Datatype type = mpi_type(data.dtype, false, r, "all_gather");
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::all_gather;
  op->call = "MPI_Allgatherv";
  op->bytes = data.bytes();
  std::int64_t at = 0;
  for (std::int64_t c : counts) {
    op->counts.push_back(to_int(c, r, "all_gather"));
    op->displs.push_back(to_int(at, r, "all_gather"));
    at += c;
  }
  const int* cnt = op->counts.data();
  const int* dsp = op->displs.data();
  void* p = data.data;
  // In place: each rank's contribution already sits at its displacement.
  op->blocking = [=](MPI_Comm c) { return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p, cnt, dsp, type, c); };
  op->nonblocking = [=](MPI_Comm c, MPI_Request* q) {
    return MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p, cnt, dsp, type, c, q);
  };
  return state_->launch(std::move(op));
}

CommRequest MpiCommunicator::broadcast(TensorView data, int root) {
  const int r = state_->rank;
  if (root < 0 || root >= state_->world)
    throw std::invalid_argument("rank " + std::to_string(r) + ": broadcast from root " + std::to_string(root) +
                                " in a world of " + std::to_string(state_->world));
  const MPI_Datatype type = mpi_type(data.dtype, false, r, "broadcast");
  const int n = to_int(data.numel(), r, "broadcast");
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::broadcast;
  op->call = "MPI_Bcast";
  op->bytes = data.bytes();
  void* p = data.data;
  op->blocking = [=](MPI_Comm c) { return MPI_Bcast(p, n, type, root, c); };
  op->nonblocking = [=](MPI_Comm c, MPI_Request* q) { return MPI_Ibcast(p, n, type, root, c, q); };
  return state_->launch(std::move(op));
}

CommRequest MpiCommunicator::barrier() {
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::barrier;
  op->call = "MPI_Barrier";
  op->bytes = 0;
  op->blocking = [](MPI_Comm c) { return MPI_Barrier(c); };
  op->nonblocking = [](MPI_Comm c, MPI_Request* q) { return MPI_Ibarrier(c, q); };
  return state_->launch(std::move(op));
}

void MpiCommunicator::all_reduce_host(std::span<double> values, HostReduce reduce) {
  const int r = state_->rank;
  const int n = to_int(static_cast<std::int64_t>(values.size()), r, "host_all_reduce");
  if (n == 0) return;
  const MPI_Op mop = reduce == HostReduce::sum ? MPI_SUM : reduce == HostReduce::max ? MPI_MAX : MPI_MIN;
  auto op = std::make_shared<MpiOp>();
  op->op = CommOp::host_all_reduce;
  op->call = "MPI_Allreduce";
  op->bytes = values.size_bytes();
  double* p = values.data();
  op->blocking = [=](MPI_Comm c) { return MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, mop, c); };
  op->nonblocking = [=](MPI_Comm c, MPI_Request* q) {
    return MPI_Iallreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, mop, c, q);
  };
  state_->launch(std::move(op)).wait();
}

}  // namespace vitscale
