#include "parallel/nccl_communicator.h"

#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <thread>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_handles.h"
#include "parallel/comm_watchdog.h"
#include "parallel/deferred_times.h"

namespace vitscale {

namespace {

std::string where(int rank, const char* op, std::size_t bytes) {
  return "rank " + std::to_string(rank) + ": " + op + " (" + std::to_string(bytes) + " bytes)";
}

void check_cuda(cudaError_t rc, int rank, const char* op, std::size_t bytes = 0) {
  if (rc != cudaSuccess) throw std::runtime_error(where(rank, op, bytes) + " failed: " + cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, ncclComm_t comm, int rank, const char* op, std::size_t bytes) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  std::string detail = ncclGetErrorString(rc);
  if (comm) {
    const char* last = ncclGetLastError(comm);
    if (last && *last) detail += std::string(" (") + last + ")";
  }
  throw std::runtime_error(where(rank, op, bytes) + " failed: " + detail);
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
    case DType::u8:
      return ncclUint8;
  }
  return ncclFloat32;
}

// One collective's start and done events on the comm stream (timing events,
// pooled: their times are read), shared by its request, the watchdog's probe
// and a pending timing reader.
struct CommSpan {
  cuda::TimingEventPool::Lease start, done;
  bool complete() const { return cuda::query_event(done.get()) != cudaErrorNotReady; }
};

// 0 when the time cannot be read (an event not recorded yet): timing is
// best-effort, and the ignored status must not surface at the next launch check.
double elapsed_seconds(cudaEvent_t from, cudaEvent_t to) {
  float ms = 0.f;
  const cudaError_t rc = cudaEventElapsedTime(&ms, from, to);
  if (rc != cudaSuccess) {
    cuda::forget_ignored_error(rc);
    return 0.0;
  }
  return static_cast<double>(ms) * 1e-3;
}

// DeferredTimes kinds: a collective's busy time by its op (CommOp), and the
// exposed time of wait_all.
constexpr int kExposedTime = -1;

}  // namespace

NcclUniqueIdBytes make_nccl_unique_id() {
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), nullptr, 0, "ncclGetUniqueId", 0);
  NcclUniqueIdBytes bytes{};
  static_assert(sizeof(id) == sizeof(bytes));
  std::memcpy(bytes.data(), &id, sizeof id);
  return bytes;
}

struct NcclCommunicator::State {
  int rank = 0, world = 1, device = 0;
  std::atomic<ncclComm_t> comm{nullptr};
  cudaStream_t compute = nullptr;
  cudaStream_t stream = nullptr;  // owned: the comm stream
  std::unique_ptr<CommWatchdog> watchdog;
  // Made once, reused: ordering events (comm after compute) and timing ones
  // (start/done of each collective, wait_all's compute mark).
  cuda::OrderingEventPool ordering_events;
  cuda::TimingEventPool timing_events;
  std::shared_ptr<CommSpan> last_done;   // the comm stream's latest collective (FIFO)
  DeferredTimes late;                    // times whose events were pending when asked (host thread only)
  void* scratch = nullptr;               // device scratch for barrier and host reductions
  std::size_t scratch_bytes = 0;

  // Orders the comm stream after the compute submitted so far, runs `issue`
  // between start/done events, and hands back a request. host_wait: wait()
  // blocks the host until completion (barrier); otherwise wait() only orders
  // the compute stream after the collective.
  CommRequest launch(CommOp kind, const char* op, std::size_t bytes, const std::function<ncclResult_t()>& issue,
                     bool host_wait = false);
  void* scratch_of(std::size_t bytes);
};

namespace {

class NcclRequest final : public CommRequest::Impl {
 public:
  NcclRequest(const std::atomic<ncclComm_t>& comm, CommWatchdog& watchdog, int rank, CommOp kind, const char* op,
              std::size_t bytes, std::uint64_t ticket, std::shared_ptr<CommSpan> span, cudaStream_t compute,
              DeferredTimes& late, bool host_wait)
      : comm_(comm),
        watchdog_(watchdog),
        rank_(rank),
        kind_(kind),
        op_(op),
        bytes_(bytes),
        ticket_(ticket),
        span_(std::move(span)),
        compute_(compute),
        late_(late),
        host_wait_(host_wait) {}

  bool test() override {
    if (complete_) return true;
    // query_event: "not ready" must not stay as the last error, or the next
    // VS_LAUNCH_CHECK throws it from an unrelated kernel mid-backward.
    const cudaError_t rc = cuda::query_event(span_->done.get());
    if (rc == cudaErrorNotReady) {
      check_async_error();
      return false;
    }
    if (rc != cudaSuccess) fail(cudaGetErrorString(rc));
    complete_ = true;
    watchdog_.end(ticket_);
    return true;
  }
  // Device-side ordering: work later submitted to the compute stream waits
  // for the collective; the host returns at once and stays ahead. The
  // watchdog's probe sees the completion (a dead peer ends the job there).
  // A barrier (host_wait) polls rather than cudaEventSynchronize: a peer that
  // died must surface as an async NCCL error or a watchdog abort, not an
  // eternal block here.
  void wait() override {
    if (host_wait_) {
      while (!test()) std::this_thread::yield();
      return;
    }
    if (ordered_ || complete_) return;
    check_async_error();
    const cudaError_t rc = cudaStreamWaitEvent(compute_, span_->done.get(), 0);
    if (rc != cudaSuccess) fail(std::string("cudaStreamWaitEvent (compute after comm): ") + cudaGetErrorString(rc));
    ordered_ = true;
  }
  // This collective's time once its events have completed, plus earlier ones
  // of the same op that were still pending when asked (deferred_times.h):
  // read without waiting; each collective counted once; read once per request.
  double busy_seconds() const override {
    if (!busy_) {
      std::shared_ptr<CommSpan> span = span_;
      busy_ = late_.report(static_cast<int>(kind_), [span]() -> std::optional<double> {
        if (!span->complete()) return std::nullopt;
        return elapsed_seconds(span->start.get(), span->done.get());
      });
    }
    return *busy_;
  }

 private:
  void check_async_error() {
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_.load(), &async);
    if (async != ncclSuccess && async != ncclInProgress) fail(std::string("NCCL: ") + ncclGetErrorString(async));
  }
  [[noreturn]] void fail(const std::string& why) {
    complete_ = true;
    watchdog_.end(ticket_);
    throw std::runtime_error(where(rank_, op_, bytes_) + " failed: " + why);
  }
  const std::atomic<ncclComm_t>& comm_;
  CommWatchdog& watchdog_;
  int rank_;
  CommOp kind_;
  const char* op_;
  std::size_t bytes_;
  std::uint64_t ticket_;
  std::shared_ptr<CommSpan> span_;
  cudaStream_t compute_;
  DeferredTimes& late_;
  bool host_wait_;
  mutable std::optional<double> busy_;
  bool ordered_ = false;
  bool complete_ = false;
};

}  // namespace

CommRequest NcclCommunicator::State::launch(CommOp kind, const char* op, std::size_t bytes,
                                            const std::function<ncclResult_t()>& issue, bool host_wait) {
  auto span = std::make_shared<CommSpan>(CommSpan{timing_events.acquire(), timing_events.acquire()});
  {
    // The wait below binds the record made here, so the event may go back to
    // the pool (and be re-recorded) as soon as the wait is enqueued.
    const cuda::OrderingEventPool::Lease ready = ordering_events.acquire();
    check_cuda(cudaEventRecord(ready.get(), compute), rank, op, bytes);
    check_cuda(cudaStreamWaitEvent(stream, ready.get(), 0), rank, op, bytes);
  }
  check_cuda(cudaEventRecord(span->start.get(), stream), rank, op, bytes);
  // The probe runs on the watchdog's thread: this device made current there
  // first (else the runtime opens a context on device 0 for it, on every rank).
  const std::uint64_t ticket = watchdog->begin(
      op, bytes, [span, dev = device] { return cudaSetDevice(dev) == cudaSuccess && span->complete(); });
  try {
    check_nccl(issue(), comm.load(), rank, op, bytes);
    check_cuda(cudaEventRecord(span->done.get(), stream), rank, op, bytes);
  } catch (...) {
    watchdog->end(ticket);
    throw;
  }
  last_done = span;
  return CommRequest(std::make_unique<NcclRequest>(comm, *watchdog, rank, kind, op, bytes, ticket, std::move(span),
                                                   compute, late, host_wait));
}

void* NcclCommunicator::State::scratch_of(std::size_t bytes) {
  if (bytes > scratch_bytes) {
    // Grown only for host reductions larger than before: start-up and eval, never the step.
    check_cuda(cudaStreamSynchronize(stream), rank, "cudaStreamSynchronize");
    if (scratch) cudaFree(scratch);
    scratch = nullptr;
    check_cuda(cudaMalloc(&scratch, bytes), rank, "cudaMalloc (nccl scratch)", bytes);
    scratch_bytes = bytes;
  }
  return scratch;
}

NcclCommunicator::NcclCommunicator(int rank, int world_size, const NcclUniqueIdBytes& id, int device,
                                   cudaStream_t compute_stream, const CommOptions& options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.rank = rank;
  s.world = world_size;
  s.device = device;
  s.compute = compute_stream;
  s.watchdog = std::make_unique<CommWatchdog>(rank, options.timeout_s, [&s](const std::string& message) {
    abort_job(message, [&s] {
      if (ncclComm_t c = s.comm.load()) ncclCommAbort(c);  // unblocks kernels stuck waiting for a peer
    });
  });
  check_cuda(cudaSetDevice(device), rank, "cudaSetDevice");
  int least = 0, greatest = 0;
  check_cuda(cudaDeviceGetStreamPriorityRange(&least, &greatest), rank, "cudaDeviceGetStreamPriorityRange");
  check_cuda(cudaStreamCreateWithPriority(&s.stream, cudaStreamNonBlocking, greatest), rank, "cudaStreamCreate");
  ncclUniqueId nid;
  std::memcpy(&nid, id.data(), sizeof nid);
  ncclComm_t comm = nullptr;
  const std::uint64_t ticket = s.watchdog->begin("ncclCommInitRank", 0);
  const ncclResult_t rc = ncclCommInitRank(&comm, world_size, nid, rank);
  s.watchdog->end(ticket);
  if (rc != ncclSuccess) {
    cudaStreamDestroy(s.stream);
    check_nccl(rc, nullptr, rank, "ncclCommInitRank", 0);
  }
  s.comm.store(comm);
}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  if (s.stream) cudaStreamSynchronize(s.stream);
  s.watchdog.reset();
  if (ncclComm_t c = s.comm.exchange(nullptr)) ncclCommDestroy(c);
  s.last_done.reset();
  if (s.scratch) cudaFree(s.scratch);
  if (s.stream) cudaStreamDestroy(s.stream);
}

int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::world_size() const { return state_->world; }
std::string NcclCommunicator::name() const {
  return "nccl " + std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR);
}

CommRequest NcclCommunicator::all_reduce(TensorView data) {
  State& s = *state_;
  if (data.numel() == 0) return completed_request();
  void* p = data.data;
  const auto n = static_cast<std::size_t>(data.numel());
  return s.launch(CommOp::all_reduce, "all_reduce", data.bytes(),
                  [&] { return ncclAllReduce(p, p, n, nccl_type(data.dtype), ncclSum, s.comm.load(), s.stream); });
}

CommRequest NcclCommunicator::reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) {
  State& s = *state_;
  check_counts(*this, "reduce_scatter", counts, send.numel());
  if (recv.numel() != counts[static_cast<std::size_t>(s.rank)] || recv.dtype != send.dtype)
    throw std::invalid_argument(where(s.rank, "reduce_scatter", send.bytes()) + ": receive buffer " + recv.describe() +
                                " does not match this rank's count");
  const ncclDataType_t type = nccl_type(send.dtype);
  const std::size_t elem = dtype_size(send.dtype);
  const bool equal = std::all_of(counts.begin(), counts.end(), [&](std::int64_t c) { return c == counts[0]; });
  return s.launch(CommOp::reduce_scatter, "reduce_scatter", send.bytes(), [&]() -> ncclResult_t {
    if (equal)
      return ncclReduceScatter(send.data, recv.data, static_cast<std::size_t>(counts[0]), type, ncclSum, s.comm.load(),
                               s.stream);
    // Uneven blocks (a ZeRO shard boundary inside a bucket): NCCL's
    // reduce-scatter needs equal counts, so reduce each block to its owner.
    ncclResult_t rc = ncclGroupStart();
    std::size_t at = 0;
    for (int q = 0; q < s.world && rc == ncclSuccess; ++q) {
      const auto c = static_cast<std::size_t>(counts[static_cast<std::size_t>(q)]);
      if (c > 0) {
        const char* block = static_cast<const char*>(send.data) + at * elem;
        void* out = q == s.rank ? recv.data : const_cast<char*>(block);  // recvbuff is read only on the root
        rc = ncclReduce(block, out, c, type, ncclSum, q, s.comm.load(), s.stream);
      }
      at += c;
    }
    const ncclResult_t end = ncclGroupEnd();
    return rc != ncclSuccess ? rc : end;
  });
}

CommRequest NcclCommunicator::all_gather(TensorView data, std::span<const std::int64_t> counts) {
  State& s = *state_;
  check_counts(*this, "all_gather", counts, data.numel());
  const ncclDataType_t type = nccl_type(data.dtype);
  const std::size_t elem = dtype_size(data.dtype);
  char* base = static_cast<char*>(data.data);
  const bool equal = std::all_of(counts.begin(), counts.end(), [&](std::int64_t c) { return c == counts[0]; });
  return s.launch(CommOp::all_gather, "all_gather", data.bytes(), [&]() -> ncclResult_t {
    if (equal) {
      const auto c = static_cast<std::size_t>(counts[0]);
      return ncclAllGather(base + static_cast<std::size_t>(s.rank) * c * elem, base, c, type, s.comm.load(), s.stream);
    }
    // Uneven shards: one in-place broadcast per owner, fused in a group.
    ncclResult_t rc = ncclGroupStart();
    std::size_t at = 0;
    for (int q = 0; q < s.world && rc == ncclSuccess; ++q) {
      const auto c = static_cast<std::size_t>(counts[static_cast<std::size_t>(q)]);
      if (c > 0) rc = ncclBroadcast(base + at * elem, base + at * elem, c, type, q, s.comm.load(), s.stream);
      at += c;
    }
    const ncclResult_t end = ncclGroupEnd();
    return rc != ncclSuccess ? rc : end;
  });
}

CommRequest NcclCommunicator::broadcast(TensorView data, int root) {
  State& s = *state_;
  if (root < 0 || root >= s.world)
    throw std::invalid_argument(where(s.rank, "broadcast", data.bytes()) + ": root " + std::to_string(root) +
                                " outside the world of " + std::to_string(s.world));
  return s.launch(CommOp::broadcast, "broadcast", data.bytes(), [&] {
    return ncclBroadcast(data.data, data.data, static_cast<std::size_t>(data.numel()), nccl_type(data.dtype), root,
                         s.comm.load(), s.stream);
  });
}

CommRequest NcclCommunicator::barrier() {
  State& s = *state_;
  void* one = s.scratch_of(sizeof(float));
  // A barrier synchronises the hosts: its wait() blocks (polling) until complete.
  return s.launch(
      CommOp::barrier, "barrier", 0,
      [&] { return ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, s.comm.load(), s.stream); }, true);
}

void NcclCommunicator::all_reduce_host(std::span<double> values, HostReduce reduce) {
  State& s = *state_;
  if (values.empty()) return;
  const ncclRedOp_t op = reduce == HostReduce::sum ? ncclSum : reduce == HostReduce::max ? ncclMax : ncclMin;
  void* dev = s.scratch_of(values.size_bytes());
  check_cuda(cudaMemcpyAsync(dev, values.data(), values.size_bytes(), cudaMemcpyHostToDevice, s.stream), s.rank,
             "host_all_reduce (upload)", values.size_bytes());
  CommRequest r = s.launch(CommOp::host_all_reduce, "host_all_reduce", values.size_bytes(), [&] {
    return ncclAllReduce(dev, dev, values.size(), ncclFloat64, op, s.comm.load(), s.stream);
  });
  // The download below is on the comm stream after the reduction (FIFO); the
  // host waits for it with the stream, and the watchdog watches the request.
  check_cuda(cudaMemcpyAsync(values.data(), dev, values.size_bytes(), cudaMemcpyDeviceToHost, s.stream), s.rank,
             "host_all_reduce (download)", values.size_bytes());
  check_cuda(cudaStreamSynchronize(s.stream), s.rank, "host_all_reduce (synchronize)", values.size_bytes());
}

void NcclCommunicator::abort() noexcept {
  if (ncclComm_t c = state_->comm.load()) ncclCommAbort(c);  // unblocks kernels waiting for a peer
}

double NcclCommunicator::wait_all(std::span<CommRequest> requests) {
  State& s = *state_;
  if (requests.empty()) return 0.0;
  // Marks where the compute submitted so far ends, then orders the compute
  // stream after every request: the host does not wait. The exposed time,
  // from that mark to the comm stream's last completion (FIFO: the last of
  // these), is read once both events have completed: now if they have, else
  // at a later call (deferred_times.h).
  auto compute_done = std::make_shared<cuda::TimingEventPool::Lease>(s.timing_events.acquire());
  check_cuda(cudaEventRecord(compute_done->get(), s.compute), s.rank, "wait_all (record)");
  for (CommRequest& r : requests) r.wait();
  std::shared_ptr<CommSpan> last = s.last_done;
  return s.late.report(kExposedTime, [compute_done, last]() -> std::optional<double> {
    if (cuda::query_event(compute_done->get()) == cudaErrorNotReady || !last->complete()) return std::nullopt;
    return std::max(0.0, elapsed_seconds(compute_done->get(), last->done.get()));
  });
}

}  // namespace vitscale
