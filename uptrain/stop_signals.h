// Preemption: cluster schedulers stop jobs with SIGTERM, and people press Ctrl-C (SIGINT). While
// a StopSignals is alive, the first of either only records the signal, so the training loop can
// finish its optimizer step, write one checkpoint on every process and exit with 128 + signal;
// a second one ends the process at once (the default action), for a user who will not wait.
#pragma once
#include <signal.h>

namespace gqa {

// While alive, `handler` receives SIGTERM and SIGINT (SA_RESTART: reads and writes in progress
// carry on); the previous handlers come back at destruction. The handler must be
// async-signal-safe. Used by StopSignals here and by the --nproc launcher, which passes them on.
class HandleStopSignals {
 public:
  explicit HandleStopSignals(void (*handler)(int));
  ~HandleStopSignals();
  HandleStopSignals(const HandleStopSignals&) = delete;
  HandleStopSignals& operator=(const HandleStopSignals&) = delete;

 private:
  struct sigaction previous_term_ {
  }, previous_int_{};
};

class StopSignals {
 public:
  StopSignals();   // installs the handlers for SIGTERM and SIGINT
  ~StopSignals();  // restores the previous ones
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The first signal received since construction, or 0.
  static int received();
  // "SIGTERM", "SIGINT", or "signal N".
  static const char* name(int signal_number);

 private:
  HandleStopSignals handlers_;
};

}  // namespace gqa
