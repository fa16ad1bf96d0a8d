#include "train/signals.h"

#include <atomic>
#include <csignal>
#include <stdexcept>

namespace vitscale::train {

namespace {

// The only global in vitscale (see signals.h): the number of the signal that
// asked the run to stop, 0 when none did. Lock-free, so safe in a handler.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  if (!g_stop_signal.compare_exchange_strong(expected, sig)) {
    // Second signal: the default action now (async-signal-safe calls only).
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

StopSignal StopSignal::install() {
  struct sigaction current {};
  sigaction(SIGTERM, nullptr, &current);
  if (current.sa_handler == on_stop_signal)
    throw std::logic_error("StopSignal::install: the handlers are already installed");
  g_stop_signal = 0;
  StopSignal s;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal must not make a blocking read fail with EINTR
  sigaction(SIGTERM, &sa, &s.old_term_);
  sigaction(SIGINT, &sa, &s.old_int_);
  s.installed_ = true;
  return s;
}

StopSignal::StopSignal(StopSignal&& other) noexcept
    : installed_(other.installed_), manual_(other.manual_), old_term_(other.old_term_), old_int_(other.old_int_) {
  other.installed_ = false;
}

StopSignal::~StopSignal() {
  if (!installed_) return;
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
}

bool StopSignal::requested() const { return manual_ || (installed_ && g_stop_signal.load() != 0); }
int StopSignal::signal_number() const { return installed_ ? g_stop_signal.load() : 0; }
void StopSignal::request() { manual_ = true; }
void StopSignal::clear() {
  manual_ = false;
  if (installed_) g_stop_signal = 0;
}

}  // namespace vitscale::train
