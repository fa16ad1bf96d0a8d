// comm_options.h — how a communicator is built: watchdog timeout and, for MPI,
// how its collectives make progress (see mpi_communicator.h).
#pragma once

#include <stdexcept>
#include <string>

namespace vitscale {

enum class MpiProgress { comm_thread, polling_thread, nonblocking };

inline const char* mpi_progress_name(MpiProgress p) {
  switch (p) {
    case MpiProgress::comm_thread:
      return "thread";
    case MpiProgress::polling_thread:
      return "polling";
    case MpiProgress::nonblocking:
      return "nonblocking";
  }
  return "?";
}

inline MpiProgress parse_mpi_progress(const std::string& name) {
  for (MpiProgress p : {MpiProgress::comm_thread, MpiProgress::polling_thread, MpiProgress::nonblocking})
    if (name == mpi_progress_name(p)) return p;
  throw std::invalid_argument("MPI progress mode '" + name + "' is not one of: thread, polling, nonblocking");
}

struct CommOptions {
  // A collective not complete after this long aborts the job naming the rank
  // and the op (comm_watchdog.h); <= 0 disables the watchdog.
  double timeout_s = 300.0;
  MpiProgress mpi_progress = MpiProgress::comm_thread;
  int mpi_poll_us = 50;  // polling_thread: how often the thread tests its collectives
};

}  // namespace vitscale
