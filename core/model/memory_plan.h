// What a verb will hold in memory, estimated from config.json and the checkpoint's tensor sizes
// before any weight is loaded, and the refusal when that will not fit (one line and exit 2,
// instead of the OOM killer's silent SIGKILL halfway through).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/model/layers.h"

namespace gqa {

struct MemoryNeed {
  int64_t weights = 0;  // resident weights in the runtime dtype
  int64_t loading = 0;  // the float32 staging of the largest tensor while it loads
  int64_t working = 0;  // activations, KV cache, statistics, buffers
  at::ScalarType dtype = at::kFloat;
  int64_t total() const { return weights + loading + working; }
  std::string describe() const;  // "15.1 GiB (weights 12.6 GiB in bf16, loading 0.5 GiB, working 2.0 GiB)"
};

// A Whole model running `sequences` x `tokens` positions at once: evaluation windows (no KV
// cache), or a prompt batch with the KV cache generation fills (pass its capacity as tokens).
MemoryNeed whole_model_need(const Checkpoint& ckpt, at::ScalarType dtype, int64_t sequences, int64_t tokens,
                            bool kv_cache);
// A OneBlock pass over `sequences` x `tokens` (calibration, --report): the shell, one block, the
// hidden states of every sequence and `statistics_blocks` blocks of float64 Gram sums.
MemoryNeed one_block_need(const Checkpoint& ckpt, at::ScalarType dtype, int64_t sequences, int64_t tokens,
                          int64_t statistics_blocks);

// Where the memory comes from: the host, or the device for CUDA placements.
struct MemoryAvailable {
  int64_t bytes = 0;
  std::string source;  // "MemAvailable", "cgroup memory.max", "ulimit -d", "free memory of cuda:0"
};
MemoryAvailable memory_available(const at::Device& device);

// Throws InputError(where, "", "needs about X (...), Y available (source); OPTION would need Z")
// when `need` does not fit, naming the first alternative that fits (or that none does).
void require_memory(const std::string& where, const MemoryNeed& need, const at::Device& device,
                    const std::vector<std::pair<std::string, MemoryNeed>>& alternatives = {});

}  // namespace gqa
