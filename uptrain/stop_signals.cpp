#include "uptrain/stop_signals.h"

#include <signal.h>

#include <atomic>
#include <string>

namespace gqa {
namespace {

std::atomic<int> first_signal{0};
struct sigaction previous_term, previous_int;

// Async-signal-safe: an atomic store, or the default action re-raised.
void on_stop_signal(int signal_number) {
  int expected = 0;
  if (first_signal.compare_exchange_strong(expected, signal_number)) return;
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

StopSignals::StopSignals() {
  first_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress carry on
  ::sigaction(SIGTERM, &action, &previous_term);
  ::sigaction(SIGINT, &action, &previous_int);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGTERM, &previous_term, nullptr);
  ::sigaction(SIGINT, &previous_int, nullptr);
}

int StopSignals::received() { return first_signal.load(); }

const char* StopSignals::name(int signal_number) {
  if (signal_number == SIGTERM) return "SIGTERM";
  if (signal_number == SIGINT) return "SIGINT";
  static thread_local std::string text;
  text = "signal " + std::to_string(signal_number);
  return text.c_str();
}

}  // namespace gqa
