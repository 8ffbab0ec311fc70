// Runs the built `gqa` binary (GQA_BIN) as a child process for the CLI tests: captures stdout and
// stderr, kills it after a time limit, or on purpose after a given delay (crash-safety tests).
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace gqa::test {

constexpr int kTimeoutSeconds = 60;

struct Result {
  int exit_code = -1;  // -1 when it did not exit normally
  int signal = 0;      // the signal that ended it, 0 when none
  bool timed_out = false;
  bool killed_on_purpose = false;  // SIGKILLed by kill_after_ms / kill_when before it finished
  bool terminated = false;         // sent SIGTERM by terminate_when
  std::string out, err;
  std::string describe() const {
    std::string s = "exit " + std::to_string(exit_code);
    if (signal) s += ", killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    if (timed_out) s += ", TIMED OUT";
    return s + "\n--- stdout ---\n" + out.substr(0, 4000) + "\n--- stderr ---\n" + err.substr(0, 4000);
  }
};

struct RunOptions {
  int timeout_seconds = kTimeoutSeconds;
  long kill_after_ms = -1;  // >= 0: SIGKILL the child this long after it started
  // When set, polled every few ms: SIGKILL the child once it returns true (e.g. once its temp
  // folder exists plus a delay).
  std::function<bool()> kill_when;
  // When set, polled every few ms: send SIGTERM once it returns true, then keep reading until the
  // child exits by itself (a graceful stop, as a scheduler's preemption).
  std::function<bool()> terminate_when;
};

// Runs argv (argv[0] is the program path), capturing its output.
inline Result run_program(const std::vector<std::string>& args, const RunOptions& opt = {}) {
  Result r;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.err = "pipe failed";
    return r;
  }
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execv(argv[0], argv.data());
    std::perror("execv");
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  const auto deadline = start + std::chrono::seconds(opt.timeout_seconds);
  const auto kill_at = opt.kill_after_ms >= 0 ? start + std::chrono::milliseconds(opt.kill_after_ms) : deadline;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto now = std::chrono::steady_clock::now();
    const bool on_purpose = (opt.kill_after_ms >= 0 && now >= kill_at) || (opt.kill_when && opt.kill_when());
    if (now >= kill_at || on_purpose) {
      r.timed_out = !on_purpose;
      r.killed_on_purpose = on_purpose;
      ::kill(pid, SIGKILL);
      break;
    }
    if (opt.terminate_when && !r.terminated && opt.terminate_when()) {
      ::kill(pid, SIGTERM);
      r.terminated = true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - now).count();
    const long long tick = opt.kill_when || (opt.terminate_when && !r.terminated) ? 2 : 1000;
    const int n = ::poll(fds, 2, int(std::min<long long>(std::max<long long>(left, 1), tick)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, size_t(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  // Finished on its own before the kill landed: not a kill.
  if (r.killed_on_purpose && r.signal != SIGKILL) r.killed_on_purpose = false;
  return r;
}

inline Result run_gqa(std::vector<std::string> args, const RunOptions& opt = {}) {
  args.insert(args.begin(), GQA_BIN);
  return run_program(args, opt);
}

// A user error: exit code exactly 2, one line on stderr containing every one of `words`.
inline ::testing::AssertionResult UserError(const Result& r, const std::vector<std::string>& words) {
  if (r.timed_out || r.signal || r.exit_code != 2)
    return ::testing::AssertionFailure() << "expected exit 2: " << r.describe();
  if (r.err.empty() || r.err.back() != '\n' || r.err.find('\n') != r.err.size() - 1)
    return ::testing::AssertionFailure() << "expected exactly one line on stderr: " << r.describe();
  if (r.err.find("error: gqa ") != std::string::npos)  // "gqa convert: error: gqa convert: ..."
    return ::testing::AssertionFailure() << "the error names the command twice: " << r.describe();
  for (const auto& w : words)
    if (r.err.find(w) == std::string::npos)
      return ::testing::AssertionFailure() << "stderr lacks '" << w << "': " << r.describe();
  return ::testing::AssertionSuccess() << r.err;
}

inline ::testing::AssertionResult Succeeded(const Result& r) {
  if (r.timed_out || r.signal || r.exit_code != 0)
    return ::testing::AssertionFailure() << "expected exit 0: " << r.describe();
  return ::testing::AssertionSuccess();
}

}  // namespace gqa::test
