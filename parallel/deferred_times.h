// deferred_times.h — times read once the device has finished, reported late rather than waited for.
//
// The NCCL engine orders the compute stream after a collective with an event
// and does not make the host wait (nccl_communicator.h), so when the reducer
// asks a collective's busy time, or wait_all its exposed time, the events
// that measure it may still be pending. Waiting for them would put back the
// host synchronisation the ordering removed. Instead a measurement that cannot
// be read yet is kept here, and a later report of the same kind (normally the
// next step's) adds it once its events have completed: every measurement is
// reported exactly once, per-step figures lag by the host's lead (at most a
// step or two), and totals over a run are exact but for the last pending ones
// (collect() takes those, at the end or wherever the host has synchronised).
// Host logic only (readers are plain callables); single-threaded use.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace vitscale {

class DeferredTimes {
 public:
  // Seconds once readable (non-blocking); nullopt while the measurement is pending.
  using Reader = std::function<std::optional<double>()>;

  // The seconds to report now for a new measurement of `kind`: its own when
  // readable already, plus every earlier one of that kind readable by now.
  double report(int kind, Reader reader) {
    double s = collect(kind);
    if (const std::optional<double> now = reader())
      s += *now;
    else
      pending_[kind].push_back(std::move(reader));
    return s;
  }

  // The earlier measurements of `kind` readable by now (each reported once).
  double collect(int kind) {
    auto it = pending_.find(kind);
    if (it == pending_.end()) return 0.0;
    double s = 0;
    std::vector<Reader>& list = it->second;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (const std::optional<double> now = list[i]())
        s += *now;
      else if (kept++ != i)
        list[kept - 1] = std::move(list[i]);
    }
    list.resize(kept);
    return s;
  }

  std::size_t pending(int kind) const {
    auto it = pending_.find(kind);
    return it == pending_.end() ? 0 : it->second.size();
  }

 private:
  std::map<int, std::vector<Reader>> pending_;  // by kind, oldest first
};

}  // namespace vitscale
