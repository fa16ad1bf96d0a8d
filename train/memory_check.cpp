#include "train/memory_check.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "train/train_config.h"

namespace vitscale::train {

namespace {

// A "Name: N kB" line of a /proc file, in bytes.
std::optional<std::size_t> proc_field(const char* path, const std::string& field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  return std::nullopt;
}

std::optional<std::size_t> file_number(const char* path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return std::nullopt;
  return std::stoull(v);
}

std::string mib(std::size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return s;
}

}  // namespace

std::size_t resident_bytes() { return proc_field("/proc/self/status", "VmRSS").value_or(0); }

std::optional<std::size_t> available_host_bytes() {
  if (const char* v = std::getenv("VITSCALE_MEMORY_AVAILABLE_MIB"); v && *v) {
    char* end = nullptr;
    const double m = std::strtod(v, &end);
    if (end == v || *end != '\0' || m < 0)
      throw ConfigError(std::string("VITSCALE_MEMORY_AVAILABLE_MIB='") + v + "' is not a number of MiB >= 0");
    return static_cast<std::size_t>(m * 1024.0 * 1024.0);
  }
  std::optional<std::size_t> avail = proc_field("/proc/meminfo", "MemAvailable");
  const std::optional<std::size_t> max = file_number("/sys/fs/cgroup/memory.max");
  const std::optional<std::size_t> used = file_number("/sys/fs/cgroup/memory.current");
  if (max && used) {
    const std::size_t room = *max > *used ? *max - *used : 0;
    avail = avail ? std::min(*avail, room) : room;
  }
  return avail;
}

void check_memory_plan(const MemoryPlan& plan, std::size_t rss_before, int rank) {
  const std::optional<std::size_t> avail = available_host_bytes();
  if (!avail) return;
  const std::size_t now = resident_bytes();
  const std::size_t grown = now > rss_before ? now - rss_before : 0;
  const std::size_t left = plan.total() > grown ? plan.total() - grown : 0;
  if (left <= *avail) return;
  throw ConfigError("rank " + std::to_string(rank) + ": the memory plan does not fit: " + mib(plan.total()) +
                    " (parameters " + mib(plan.params) + ", gradients " + mib(plan.grads) + ", optimizer " +
                    mib(plan.optimizer) + ", activations " + mib(plan.activations) + "), of which " + mib(left) +
                    " is still to be touched, but " + mib(*avail) +
                    " is available; lower the micro batch, turn on --activation-checkpointing or raise --zero-stage");
}

}  // namespace vitscale::train
