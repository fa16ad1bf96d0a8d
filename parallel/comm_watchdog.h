// comm_watchdog.h — turns a collective that never completes into a loud exit.
//
// A rank that dies, or skips a collective, leaves its peers blocked in NCCL or
// MPI forever. Each communicator registers every collective here when it is
// launched and deregisters it when its completion is seen; a thread checks the
// oldest outstanding one and, once it is older than the timeout, prints
//   rank R: <op> (<bytes> bytes) did not complete within T s; aborting
// and runs the abort action (ncclCommAbort / MPI_Abort, then _Exit), which
// takes every other rank of the job down with it.
//
// A collective whose completion nobody on the host waits for (NCCL: the
// compute stream waits on its done event, the host runs ahead) registers a
// completion probe instead; the watchdog's thread calls it each period and
// deregisters the collective once it says complete. This is the only host
// polling of such collectives.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace vitscale {

class CommWatchdog {
 public:
  using AbortAction = std::function<void(const std::string& message)>;

  // timeout_s <= 0 disables the watchdog (no thread is started).
  CommWatchdog(int rank, double timeout_s, AbortAction abort);
  ~CommWatchdog();
  CommWatchdog(const CommWatchdog&) = delete;
  CommWatchdog& operator=(const CommWatchdog&) = delete;

  // Returns a ticket for end(). Thread-safe. `complete` (optional, non-blocking,
  // called on the watchdog's thread under its lock) ends the entry once it
  // returns true, so that end() need not be called.
  using CompletionProbe = std::function<bool()>;
  std::uint64_t begin(const char* op, std::size_t bytes, CompletionProbe complete = {});
  void end(std::uint64_t ticket);

  double timeout_seconds() const { return timeout_s_; }
  std::size_t outstanding() const;

 private:
  struct Entry {
    const char* op;
    std::size_t bytes;
    std::chrono::steady_clock::time_point start;
    CompletionProbe complete;
  };
  void drop_completed();  // with mutex_ held
  void run();

  int rank_;
  double timeout_s_;
  AbortAction abort_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint64_t, Entry> entries_;  // by ticket: the first one is the oldest
  std::uint64_t next_ticket_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

// The message the watchdog prints, exposed for tests.
std::string watchdog_message(int rank, const char* op, std::size_t bytes, double timeout_s);

// Prints the message, runs `engine_abort` (may be empty), then aborts the MPI
// job when MPI is running (MPI_Abort with exit_code), and finally
// _Exit(exit_code)s. Never returns.
[[noreturn]] void abort_job(const std::string& message, const std::function<void()>& engine_abort,
                            int exit_code = 3);

}  // namespace vitscale
