#include "parallel/comm_timing.h"

#include <cstdio>

namespace vitscale {

std::string CommTiming::format() const {
  char line[200];
  int n = std::snprintf(line, sizeof line, "comm %.2f ms (exposed %.2f ms, overlap %.0f%%), %d buckets, %.2f MB",
                        reduce_s * 1e3, exposed_s * 1e3, overlap_ratio() * 100.0, buckets,
                        static_cast<double>(bytes) / 1e6);
  if (gather_s > 0 && n > 0 && n < static_cast<int>(sizeof line))
    std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), ", gather %.2f ms", gather_s * 1e3);
  return line;
}

}  // namespace vitscale
