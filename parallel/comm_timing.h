// comm_timing.h — what one optimizer step spent on communication.
//
// DeepSpeed without ZeRO-2 all-reduces only after backward has finished, so
// all of its communication is exposed; the point of the bucketed reducer is
// to hide it behind the rest of backward. Per step we record:
//   reduce_s    the engine's busy time on this step's gradient collectives
//   exposed_s   how long, after backward's compute finished, the step still
//               waited for them (finish(); on the GPU measured with events)
//   overlap     1 − exposed / reduce: the share of gradient communication hidden
//   gather_s    ZeRO-1's parameter all-gather and gradient-norm all-reduce
//               (after the optimizer; nothing left to hide them behind)
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>

namespace vitscale {

struct CommTiming {
  double reduce_s = 0;
  double exposed_s = 0;
  double gather_s = 0;
  int buckets = 0;          // gradient collectives launched this step
  std::size_t bytes = 0;    // gradient bytes handed to the engine
  bool overlapped = false;  // overlap_comm was on

  // 0 when there was no communication (world size 1).
  double overlap_ratio() const { return reduce_s > 0 ? std::clamp(1.0 - exposed_s / reduce_s, 0.0, 1.0) : 0.0; }
  double exposed_fraction() const { return reduce_s > 0 ? std::clamp(exposed_s / reduce_s, 0.0, 1.0) : 0.0; }

  CommTiming& operator+=(const CommTiming& o) {
    reduce_s += o.reduce_s;
    exposed_s += o.exposed_s;
    gather_s += o.gather_s;
    buckets += o.buckets;
    bytes += o.bytes;
    overlapped = overlapped || o.overlapped;
    return *this;
  }
  // "comm 12.3 ms (exposed 1.2 ms, overlap 90%), 5 buckets, 22.1 MB"
  std::string format() const;
};

}  // namespace vitscale
