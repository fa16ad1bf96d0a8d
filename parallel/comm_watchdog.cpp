#include "parallel/comm_watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <sstream>

#if VITSCALE_HAVE_MPI
#include <mpi.h>
#endif

namespace vitscale {

std::string watchdog_message(int rank, const char* op, std::size_t bytes, double timeout_s) {
  std::ostringstream s;
  s << "rank " << rank << ": " << op << " (" << bytes << " bytes) did not complete within " << timeout_s
    << " s; aborting";
  return s.str();
}

CommWatchdog::CommWatchdog(int rank, double timeout_s, AbortAction abort)
    : rank_(rank), timeout_s_(timeout_s), abort_(std::move(abort)) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { run(); });
}

CommWatchdog::~CommWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t CommWatchdog::begin(const char* op, std::size_t bytes, CompletionProbe complete) {
  std::lock_guard lock(mutex_);
  const std::uint64_t ticket = next_ticket_++;
  if (timeout_s_ > 0) entries_.emplace(ticket, Entry{op, bytes, std::chrono::steady_clock::now(), std::move(complete)});
  return ticket;
}

void CommWatchdog::drop_completed() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool done = false;
    try {
      done = it->second.complete && it->second.complete();
    } catch (...) {
      done = true;  // a probe that fails says nothing more: the engine reports the error where it waits
    }
    it = done ? entries_.erase(it) : std::next(it);
  }
}

void CommWatchdog::end(std::uint64_t ticket) {
  std::lock_guard lock(mutex_);
  entries_.erase(ticket);
}

std::size_t CommWatchdog::outstanding() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void CommWatchdog::run() {
  using namespace std::chrono;
  const auto timeout = duration_cast<steady_clock::duration>(duration<double>(timeout_s_));
  // Check often enough that the abort comes at most ~10% after the timeout.
  const auto period =
      std::clamp(timeout / 10, steady_clock::duration(milliseconds(10)), steady_clock::duration(seconds(1)));
  std::unique_lock lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, period, [this] { return stop_; });
    if (stop_) continue;
    drop_completed();
    if (entries_.empty()) continue;
    const Entry oldest = entries_.begin()->second;
    if (steady_clock::now() - oldest.start < timeout) continue;
    const std::string message = watchdog_message(rank_, oldest.op, oldest.bytes, timeout_s_);
    entries_.clear();  // report once
    lock.unlock();
    abort_(message);  // normally does not return
    lock.lock();
  }
}

[[noreturn]] void abort_job(const std::string& message, const std::function<void()>& engine_abort, int exit_code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (engine_abort) engine_abort();
#if VITSCALE_HAVE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  // MPI_Abort from this (watchdog) thread while another thread sits in a
  // collective needs MPI_THREAD_MULTIPLE, which the session asks for; with a
  // lower level we only _Exit, and the launcher then tears the job down.
  int level = MPI_THREAD_SINGLE;
  if (initialized && !finalized) MPI_Query_thread(&level);
  if (initialized && !finalized && level == MPI_THREAD_MULTIPLE) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::_Exit(exit_code);
}

}  // namespace vitscale
