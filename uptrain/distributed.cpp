#include "uptrain/distributed.h"

#include <ATen/core/grad_mode.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <thread>
#include <tuple>

// The c10d headers compile their backends only under the macros torch's own build sets.
#define USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef GQA_WITH_NCCL
#define USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/error.h"
#include "uptrain/stop_signals.h"

extern char** environ;

namespace gqa {
namespace {

// ---- environment ----------------------------------------------------------------------------

// An integer variable in [min_value, max_value]; `fallback` when unset.
int integer_variable(const char* name, int fallback, int min_value, int max_value, const std::string& range_text) {
  const char* raw = std::getenv(name);
  if (raw == nullptr) return fallback;
  const std::string text = raw;
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < min_value ||
      value > max_value)
    throw InputError("environment", name, "expected an integer " + range_text + ", got '" + text + "'");
  return value;
}

bool is_loopback(const std::string& address) {
  return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

// ---- error text -----------------------------------------------------------------------------

// c10::Error's what() carries a C++ backtrace; one line is what a user needs.
std::string first_line(const std::exception& error) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  std::string text = torch_error ? torch_error->what_without_backtrace() : error.what();
  const auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

// ---- the process-group communicator ---------------------------------------------------------

using Collective = std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)>;

class ProcessGroupCommunicator final : public Communicator {
 public:
  ProcessGroupCommunicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> backend,
                           const at::Device& comm_device, std::size_t bucket_bytes)
      : store_(std::move(store)),
        backend_(std::move(backend)),
        comm_device_(comm_device),
        bucket_bytes_(bucket_bytes) {}

  ~ProcessGroupCommunicator() override {
    try {
      backend_->shutdown();
    } catch (const std::exception&) {
      // Already failing (a peer is gone); nothing left to release cleanly.
    }
  }

  int rank() const override { return backend_->getRank(); }
  int world_size() const override { return backend_->getSize(); }

  void all_reduce_mean(const std::vector<at::Tensor>& tensors) override {
    for (const auto& tensor : tensors)
      if (!tensor.defined() || !tensor.is_floating_point())
        throw std::invalid_argument("all_reduce_mean: every tensor must be a defined floating-point tensor");
    run_bucketed(
        "all_reduce", tensors,
        [this](std::vector<at::Tensor>& flat) { return backend_->allreduce(flat, c10d::AllreduceOptions{}); },
        /*divide_by=*/world_size(), /*write_back=*/true);
  }

  std::vector<double> all_reduce_sum(const std::vector<double>& values) override {
    if (values.empty()) return {};
    std::vector<at::Tensor> flat{at::tensor(values, at::kDouble).to(comm_device_)};
    wait("all_reduce", backend_->allreduce(flat, c10d::AllreduceOptions{}));
    const at::Tensor sums = flat[0].cpu();
    return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
  }

  void broadcast(const std::vector<at::Tensor>& tensors) override {
    for (const auto& tensor : tensors)
      if (!tensor.defined()) throw std::invalid_argument("broadcast: undefined tensor");
    run_bucketed(
        "broadcast", tensors,
        [this](std::vector<at::Tensor>& flat) {
          c10d::BroadcastOptions options;
          options.rootRank = 0;
          return backend_->broadcast(flat, options);
        },
        /*divide_by=*/1, /*write_back=*/rank() != 0);
  }

  void reduce_scatter_sum(const at::Tensor& input, const at::Tensor& slice) override {
    check_slices("reduce_scatter_sum", input, slice);
    at::Tensor in = on_comm_device(input), out = on_comm_device(slice);
    wait("reduce_scatter", backend_->_reduce_scatter_base(out, in, c10d::ReduceScatterOptions{}));
    if (!out.is_same(slice)) slice.copy_(out);
  }

  void all_gather(const at::Tensor& slice, const at::Tensor& output) override {
    check_slices("all_gather", output, slice);
    at::Tensor in = on_comm_device(slice), out = on_comm_device(output);
    wait("all_gather", backend_->_allgather_base(out, in, c10d::AllgatherOptions{}));
    if (!out.is_same(output)) output.copy_(out);
  }

  // An all-reduce rather than the backend's barrier: it means the same on gloo and NCCL, and
  // reading the result back blocks the CPU on NCCL too.
  void barrier() override { all_reduce_sum({0.0}); }

 private:
  // One contiguous tensor on comm_device_ holding the bucket's tensors; the tensor itself (a
  // view) when the bucket is a single tensor already in that form, so no copy is made.
  at::Tensor flatten(const std::vector<at::Tensor>& tensors, const std::vector<std::size_t>& bucket) const {
    const at::Tensor& first = tensors[bucket.front()];
    if (bucket.size() == 1 && first.is_contiguous() && first.device() == comm_device_) return first.view({-1});
    std::vector<at::Tensor> pieces;
    pieces.reserve(bucket.size());
    for (std::size_t index : bucket) pieces.push_back(tensors[index].reshape({-1}));
    return at::cat(pieces).to(comm_device_);
  }

  void check_slices(const char* name, const at::Tensor& whole, const at::Tensor& slice) const {
    if (!whole.is_contiguous() || !slice.is_contiguous() || whole.scalar_type() != slice.scalar_type() ||
        whole.numel() != slice.numel() * world_size())
      throw std::invalid_argument(std::string(name) + ": expected contiguous tensors of one dtype, the whole " +
                                  std::to_string(world_size()) + " times the slice");
  }

  // The tensor itself when it is already where the backend works, else a copy there (gloo serving
  // a CUDA job stages through host memory).
  at::Tensor on_comm_device(const at::Tensor& t) const { return t.device() == comm_device_ ? t : t.to(comm_device_); }

  // Flattens each bucket, starts `collective` on all of them (so they overlap), then waits and
  // copies the results back, divided by `divide_by`.
  void run_bucketed(const char* name, const std::vector<at::Tensor>& tensors, const Collective& collective,
                    int divide_by, bool write_back) {
    at::NoGradGuard no_grad;  // parameters are leaves that require grad; this is not part of the graph
    struct InFlight {
      std::vector<std::size_t> members;
      std::vector<at::Tensor> flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<InFlight> in_flight;
    for (auto& bucket : plan_buckets(tensors, bucket_bytes_)) {
      const bool empty =
          std::all_of(bucket.begin(), bucket.end(), [&](std::size_t i) { return tensors[i].numel() == 0; });
      if (empty) continue;  // nothing to send; every rank skips it alike
      InFlight item{std::move(bucket), {}, {}};
      item.flat.push_back(flatten(tensors, item.members));
      item.work = collective(item.flat);
      in_flight.push_back(std::move(item));
    }
    for (auto& item : in_flight) {
      wait(name, item.work);
      at::Tensor& flat = item.flat.front();
      if (divide_by != 1) flat.div_(divide_by);
      if (!write_back) continue;
      std::int64_t offset = 0;
      for (std::size_t index : item.members) {
        const at::Tensor& tensor = tensors[index];
        if (!flat.is_alias_of(tensor)) tensor.copy_(flat.narrow(0, offset, tensor.numel()).view(tensor.sizes()));
        offset += tensor.numel();
      }
    }
  }

  void wait(const char* name, const c10::intrusive_ptr<c10d::Work>& work) const {
    try {
      work->wait();
    } catch (const std::exception& error) {
      throw std::runtime_error(std::string("distributed ") + name + " failed on rank " + std::to_string(rank()) +
                               " of " + std::to_string(world_size()) + ": " + first_line(error));
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;  // declared first: outlives the backend
  c10::intrusive_ptr<c10d::Backend> backend_;
  at::Device comm_device_;  // where the flat buckets live: CPU for gloo, the GPU for NCCL
  std::size_t bucket_bytes_;
};

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_mean(const std::vector<at::Tensor>&) override {}
  std::vector<double> all_reduce_sum(const std::vector<double>& values) override { return values; }
  void broadcast(const std::vector<at::Tensor>&) override {}
  void reduce_scatter_sum(const at::Tensor& input, const at::Tensor& slice) override {
    slice.copy_(input.view_as(slice));
  }
  void all_gather(const at::Tensor& slice, const at::Tensor& output) override { output.copy_(slice.view_as(output)); }
  void barrier() override {}
};

// Gloo's transport binds one address that every peer must reach. As in torch:
// GLOO_SOCKET_IFNAME when set, else this host's name (falling back to loopback); all-local jobs
// (a loopback MASTER_ADDR) use loopback, which needs no name resolution.
std::shared_ptr<::gloo::transport::Device> make_gloo_device(const DistributedEnv& env) {
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface != nullptr && *interface != '\0') {
    try {
      return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
    } catch (const std::exception& error) {
      throw InputError("environment", "GLOO_SOCKET_IFNAME", first_line(error));
    }
  }
  if (is_loopback(env.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const DistributedEnv& env,
                                                    std::chrono::milliseconds collective_timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(collective_timeout);
  options->devices.push_back(make_gloo_device(env));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
}

#ifdef GQA_WITH_NCCL
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    const DistributedEnv& env, const at::Device& gpu,
                                                    std::chrono::milliseconds collective_timeout) {
  c10::cuda::set_device(gpu.index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = collective_timeout;
  auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
  backend->eagerConnectSingleDevice(gpu);  // NCCL connects lazily; fail here, at the rendezvous
  return backend;
}
#endif

// ---- launcher -------------------------------------------------------------------------------

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;  // the kernel picks a free one
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!ok) throw std::runtime_error(std::string("cannot find a free TCP port: ") + std::strerror(saved_errno));
  return ntohs(address.sin_port);
}

// NAME=value strings: this process's environment with `overrides` replacing same-named entries.
std::vector<std::string> environment_with(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> entries;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    if (overrides.count(text.substr(0, text.find('='))) == 0) entries.push_back(text);
  }
  for (const auto& [name, value] : overrides) entries.push_back(name + "=" + value);
  return entries;
}

std::vector<char*> null_terminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Forks and execs; everything is prepared before fork because only async-signal-safe calls are
// allowed in the child of a multithreaded process (torch runs thread pools).
pid_t spawn(std::vector<std::string> argv, std::vector<std::string> environment) {
  std::vector<char*> argv_pointers = null_terminated(argv);
  std::vector<char*> environment_pointers = null_terminated(environment);
  const std::string exec_failed = "gqa: cannot execute " + argv[0] + ": ";
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child. Die with the launcher, and undo signal settings the launcher's threads may have made.
  // Its own process group: a Ctrl-C at the terminal reaches the launcher alone, which passes it
  // on once, so that a child sees one signal (stop after this step), not two (stop now).
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != launcher) ::_exit(128 + SIGTERM);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  ::execve(argv_pointers[0], argv_pointers.data(), environment_pointers.data());
  // One write, so the lines of several children do not interleave.
  const char* reason = std::strerror(errno);
  char message[1024];
  const std::size_t prefix = std::min(exec_failed.size(), sizeof(message) - 2);
  const std::size_t reason_length = std::min(std::strlen(reason), sizeof(message) - 2 - prefix);
  std::memcpy(message, exec_failed.data(), prefix);
  std::memcpy(message + prefix, reason, reason_length);
  message[prefix + reason_length] = '\n';
  [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message, prefix + reason_length + 1);
  ::_exit(127);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// SIGTERM / SIGINT received by the launcher while it waits, for the wait loop to pass on.
std::atomic<int> signal_to_forward{0};
void remember_signal(int signal_number) { signal_to_forward = signal_number; }

void signal_all(const std::vector<pid_t>& pids, const std::vector<bool>& running, int signal_number) {
  for (std::size_t i = 0; i < pids.size(); ++i)
    if (running[i]) ::kill(pids[i], signal_number);
}

// Waits for every child; on the first failure terminates the rest (SIGKILL after the grace
// period). Polls with WNOHANG so it reaps only its own children, in the order they end.
int wait_for_children(const std::vector<pid_t>& pids, std::chrono::seconds grace) {
  using Clock = std::chrono::steady_clock;
  std::vector<bool> running(pids.size(), true);
  std::size_t remaining = pids.size();
  int first_failure = 0;
  bool killed = false;
  Clock::time_point kill_at = Clock::time_point::max();
  while (remaining > 0) {
    if (const int forwarded = signal_to_forward.exchange(0)) signal_all(pids, running, forwarded);
    bool reaped = false;
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (!running[i]) continue;
      int status = 0;
      const pid_t result = ::waitpid(pids[i], &status, WNOHANG);
      if (result == 0 || (result < 0 && errno == EINTR)) continue;
      running[i] = false;
      --remaining;
      reaped = true;
      const int code = result < 0 ? 1 : exit_code(status);  // result < 0: reaped by someone else
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        signal_all(pids, running, SIGTERM);
        kill_at = Clock::now() + grace;
      }
    }
    if (remaining > 0 && !killed && Clock::now() >= kill_at) {
      signal_all(pids, running, SIGKILL);
      killed = true;
    }
    if (!reaped && remaining > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return first_failure;
}

}  // namespace

// ---- public API -----------------------------------------------------------------------------

DistributedEnv DistributedEnv::from_environment() {
  DistributedEnv env;
  constexpr int kMax = 1 << 30;
  env.world_size = integer_variable("WORLD_SIZE", env.world_size, 1, kMax, "of at least 1");
  const std::string last_rank = std::to_string(env.world_size - 1);
  env.rank = integer_variable("RANK", env.rank, 0, env.world_size - 1, "from 0 to WORLD_SIZE-1 = " + last_rank);
  env.local_rank =
      integer_variable("LOCAL_RANK", env.local_rank, 0, env.world_size - 1, "from 0 to WORLD_SIZE-1 = " + last_rank);
  env.master_port = integer_variable("MASTER_PORT", env.master_port, 1, 65535, "from 1 to 65535");
  if (const char* address = std::getenv("MASTER_ADDR")) {
    if (*address == '\0') throw InputError("environment", "MASTER_ADDR", "is empty; expected a host name or address");
    env.master_addr = address;
  }
  return env;
}

std::unique_ptr<Communicator> single_process() { return std::make_unique<SingleProcessCommunicator>(); }

std::unique_ptr<Communicator> join_process_group(const DistributedEnv& env, const at::Device& device, int timeout_s,
                                                 std::size_t bucket_bytes) {
  if (env.world_size == 1) return single_process();
  if (timeout_s < 1) throw std::invalid_argument("join_process_group: timeout_s must be at least 1");
  const std::chrono::milliseconds rendezvous_timeout = std::chrono::seconds(timeout_s);
  const std::chrono::milliseconds collective_timeout =
      std::max<std::chrono::milliseconds>(rendezvous_timeout, std::chrono::minutes(30));
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string who = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = std::uint16_t(env.master_port);
    store_options.isServer = env.rank == 0;
    store_options.numWorkers = env.world_size;
    store_options.waitWorkers = true;  // rank 0 returns once everyone has connected
    store_options.timeout = rendezvous_timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);

    c10::intrusive_ptr<c10d::Backend> backend;
    at::Device comm_device = at::kCPU;
#ifdef GQA_WITH_NCCL
    if (device.is_cuda()) {
      comm_device = device.has_index() ? device : at::Device(at::kCUDA, env.local_rank);
      backend = make_nccl_backend(store, env, comm_device, collective_timeout);
    }
#endif
    // Gloo also serves CUDA jobs without NCCL: the buckets are staged in host memory.
    if (!backend) backend = make_gloo_backend(store, env, collective_timeout);
    auto communicator =
        std::make_unique<ProcessGroupCommunicator>(std::move(store), std::move(backend), comm_device, bucket_bytes);
    return communicator;
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& error) {
    throw InputError("environment", "MASTER_ADDR:MASTER_PORT",
                     who + " could not join the process group at " + where + " within " + std::to_string(timeout_s) +
                         " s: " + first_line(error));
  }
}

std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<at::Tensor>& tensors, std::size_t bucket_bytes) {
  using Key = std::tuple<int, int, int>;  // dtype, device type, device index
  std::vector<std::vector<std::size_t>> buckets;
  std::map<Key, std::pair<std::size_t, std::size_t>> open;  // key -> (bucket index, bytes in it)
  for (std::size_t index = 0; index < tensors.size(); ++index) {
    const at::Tensor& tensor = tensors[index];
    const Key key{int(tensor.scalar_type()), int(tensor.device().type()), tensor.device().index()};
    const std::size_t bytes = tensor.numel() * tensor.element_size();
    auto found = open.find(key);
    if (found == open.end() || found->second.second + bytes > bucket_bytes) {
      buckets.emplace_back();
      found = open.insert_or_assign(key, std::make_pair(buckets.size() - 1, std::size_t{0})).first;
    }
    buckets[found->second.first].push_back(index);
    found->second.second += bytes;
  }
  return buckets;
}

int launch_local_processes(int nproc, const std::vector<std::string>& argv, int grace_s) {
  if (nproc < 1)
    throw InputError("command line", "--nproc", "expected at least 1 process, got " + std::to_string(nproc));
  if (argv.empty() || argv[0].empty()) throw InputError("command line", "", "no program to launch");
  const int port = pick_free_port();
  std::map<std::string, std::string> shared{{"WORLD_SIZE", std::to_string(nproc)},
                                            {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                                            {"MASTER_ADDR", "127.0.0.1"},
                                            {"MASTER_PORT", std::to_string(port)}};
  // N processes each using every core slow each other down; split the cores (as torchrun does).
  if (std::getenv("OMP_NUM_THREADS") == nullptr)
    shared["OMP_NUM_THREADS"] = std::to_string(std::max(1u, std::thread::hardware_concurrency() / nproc));
  // While it waits, the launcher's SIGTERM and SIGINT are passed on to the children instead of
  // ending it: each child stops after its current step and checkpoints (stop_signals.h), and the
  // launcher returns their exit code.
  signal_to_forward = 0;
  HandleStopSignals forward(remember_signal);
  std::vector<pid_t> children;
  for (int rank = 0; rank < nproc; ++rank) {
    auto overrides = shared;
    overrides["RANK"] = overrides["LOCAL_RANK"] = std::to_string(rank);
    const pid_t pid = spawn(argv, environment_with(overrides));
    if (pid < 0) {
      const int saved_errno = errno;
      std::vector<bool> running(children.size(), true);
      signal_all(children, running, SIGKILL);
      for (pid_t child : children) ::waitpid(child, nullptr, 0);
      throw std::runtime_error(std::string("cannot start a process: ") + std::strerror(saved_errno));
    }
    children.push_back(pid);
  }
  return wait_for_children(children, std::chrono::seconds(grace_s));
}

std::string current_executable() {
  std::string path(256, '\0');
  for (;;) {
    const ssize_t length = ::readlink("/proc/self/exe", path.data(), path.size());
    if (length < 0) throw std::runtime_error(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
    if (std::size_t(length) < path.size()) return path.substr(0, length);
    path.resize(path.size() * 2);
  }
}

}  // namespace gqa
