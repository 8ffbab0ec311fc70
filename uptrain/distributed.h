// Data parallel over torch's c10d: ProcessGroupGloo on CPU, ProcessGroupNCCL on CUDA, joined
// through a TCPStore at MASTER_ADDR:MASTER_PORT. Launch: torchrun-style environment variables
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), or `--nproc N`, which re-runs the
// current command N times on this machine with those variables set.
//
// Build notes: gloo's headers come from Debian's libgloo-dev (only the headers are used; gloo's
// code is the copy inside libtorch_cpu.so). NCCL is compiled in only when the build defines
// GQA_WITH_NCCL (with the CUDA/NCCL headers of the torch wheel's nvidia packages and
// libtorch_cuda.so linked); without it a CUDA job still runs, reducing through gloo with the
// buckets staged in host memory.
#pragma once
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gqa {

struct DistributedEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // From the environment; unset variables keep the defaults above (so no variables = one
  // process). Throws InputError("environment", VARIABLE, ...) on values that do not parse,
  // WORLD_SIZE < 1, rank >= world_size, or a port outside 1..65535.
  static DistributedEnv from_environment();
  bool is_distributed() const { return world_size > 1; }
};

// Collective operations the trainer needs. Every process must call the same collectives in the
// same order with tensors of the same shapes and dtypes. The single-process implementation does
// nothing. A collective that fails (a peer died, timeout) throws std::runtime_error.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Averages the floating-point tensors over all processes in place (flattened into buckets of
  // about bucket_bytes of one dtype and device, so each collective is large). Any device.
  virtual void all_reduce_mean(const std::vector<at::Tensor>& tensors) = 0;
  // Sums a few scalars over all processes (loss, token counts).
  virtual std::vector<double> all_reduce_sum(const std::vector<double>& values) = 0;
  // Copies rank 0's tensors to every process in place (initial parameters; any dtype).
  virtual void broadcast(const std::vector<at::Tensor>& tensors) = 0;
  // ZeRO's two collectives on one flat tensor of world_size() equal slices. reduce_scatter_sum:
  // `slice` (numel = input.numel() / world_size()) receives slice rank() of the sum of every
  // process's `input`. all_gather: `output` (world_size() slices) receives every process's
  // `slice`, in rank order. Contiguous tensors of one floating dtype, on the run's device.
  virtual void reduce_scatter_sum(const at::Tensor& input, const at::Tensor& slice) = 0;
  virtual void all_gather(const at::Tensor& slice, const at::Tensor& output) = 0;
  virtual void barrier() = 0;
};

constexpr std::size_t kDefaultBucketBytes = std::size_t{25} << 20;  // as torch DDP

std::unique_ptr<Communicator> single_process();
// Joins the process group described by `env` with the backend for `device` (gloo for CPU,
// nccl for CUDA when compiled in, else gloo through host memory). Rank 0 serves the TCPStore.
// Throws InputError naming MASTER_ADDR:MASTER_PORT when the rendezvous fails within
// `timeout_s`. A world of one process needs no rendezvous: it returns single_process().
// Collectives themselves time out after max(timeout_s, 30 min), since a peer may be busy
// (evaluating, saving) for long stretches.
std::unique_ptr<Communicator> join_process_group(const DistributedEnv& env, const at::Device& device,
                                                 int timeout_s = 120, std::size_t bucket_bytes = kDefaultBucketBytes);

// How all_reduce_mean / broadcast group `tensors`: each bucket lists tensor indices of one dtype
// and device, in order, adding tensors while the bucket stays within bucket_bytes (a larger
// tensor gets a bucket of its own). Exposed for tests.
std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<at::Tensor>& tensors, std::size_t bucket_bytes);

// Runs `argv` (argv[0]: path of the executable, not searched in PATH; e.g. current_executable()
// followed by this program's arguments minus --nproc) as `nproc` local processes with
// RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE/MASTER_ADDR=127.0.0.1/MASTER_PORT set (a free
// port chosen; OMP_NUM_THREADS = cores / nproc unless already set), waits for all and returns
// the exit code of the first process that fails (128 + signal number when killed by a signal;
// 127 when argv[0] cannot be executed), 0 when all succeed. When one fails the others get
// SIGTERM, then SIGKILL after `grace_s` seconds. Children get SIGTERM if the launcher dies.
// Throws InputError for nproc < 1 or an empty argv.
int launch_local_processes(int nproc, const std::vector<std::string>& argv, int grace_s = 5);

// Absolute path of the running program (/proc/self/exe resolved).
std::string current_executable();

}  // namespace gqa
