#include "uptrain/stop_signals.h"

#include <atomic>
#include <string>

namespace gqa {
namespace {

std::atomic<int> first_signal{0};

// Async-signal-safe: an atomic store, or the default action re-raised.
void on_stop_signal(int signal_number) {
  int expected = 0;
  if (first_signal.compare_exchange_strong(expected, signal_number)) return;
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

// The handler, with the record of an earlier run cleared first.
void (*fresh_stop_handler())(int) {
  first_signal = 0;
  return on_stop_signal;
}

}  // namespace

HandleStopSignals::HandleStopSignals(void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, &previous_term_);
  ::sigaction(SIGINT, &action, &previous_int_);
}

HandleStopSignals::~HandleStopSignals() {
  ::sigaction(SIGTERM, &previous_term_, nullptr);
  ::sigaction(SIGINT, &previous_int_, nullptr);
}

StopSignals::StopSignals() : handlers_(fresh_stop_handler()) {}

StopSignals::~StopSignals() = default;

int StopSignals::received() { return first_signal.load(); }

const char* StopSignals::name(int signal_number) {
  if (signal_number == SIGTERM) return "SIGTERM";
  if (signal_number == SIGINT) return "SIGINT";
  static thread_local std::string text;
  text = "signal " + std::to_string(signal_number);
  return text.c_str();
}

}  // namespace gqa
