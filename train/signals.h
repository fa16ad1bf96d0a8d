// signals.h — SIGTERM / SIGINT become "save a checkpoint at the next step boundary".
//
// Clusters pre-empt a job with SIGTERM (Slurm, Kubernetes) and give it a grace
// period; a user stops a run with Ctrl-C. Either way the trainer should finish
// the step it is in, save, and exit cleanly. A signal handler may only touch a
// lock-free atomic, so the one piece of global state in vitscale is that flag
// (a handler has no other way to reach an object). Everything else asks a
// StopSignal object, which tests can also trigger by hand.
//
// A second signal while the first is pending restores the default action and
// re-raises it: a user who presses Ctrl-C twice means "now".
#pragma once

#include <signal.h>

namespace vitscale::train {

class StopSignal {
 public:
  // Installs the handlers for SIGTERM and SIGINT (restored by the destructor).
  // At most one may be installed at a time.
  static StopSignal install();
  // A flag with no handlers (tests; embedding vit_train as a library).
  StopSignal() = default;
  StopSignal(StopSignal&& other) noexcept;
  StopSignal& operator=(StopSignal&&) = delete;
  StopSignal(const StopSignal&) = delete;
  ~StopSignal();

  bool requested() const;
  int signal_number() const;  // the signal that asked (0: none, or asked by request())
  void request();             // as if a signal had arrived (tests, --stop-at-step)
  void clear();

 private:
  bool installed_ = false;
  bool manual_ = false;
  struct sigaction old_term_ {}, old_int_ {};  // restored by the destructor
};

}  // namespace vitscale::train
