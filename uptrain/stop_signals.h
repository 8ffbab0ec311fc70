// Preemption: cluster schedulers stop jobs with SIGTERM, and people press Ctrl-C (SIGINT). While
// a StopSignals is alive, the first of either only records the signal, so the training loop can
// finish its optimizer step, write one checkpoint on every process and exit with 128 + signal;
// a second one ends the process at once (the default action), for a user who will not wait.
#pragma once

namespace gqa {

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
};

}  // namespace gqa
