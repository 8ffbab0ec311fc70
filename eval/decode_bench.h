// Decode speed of a model as users see it: a batch of prompts prefilled into a preallocated KV
// cache, then one token per sequence per step (greedy, no recompute). Time per decoded token is
// the median (and min) over repeats after one warm-up run; prefill throughput, KV-cache bytes and
// peak memory (CPU resident set, or CUDA max allocated) are reported beside it.
#pragma once
#include <cstdint>
#include <vector>

#include "core/model/model.h"

namespace gqa {

struct DecodeBenchOptions {
  std::vector<int64_t> batches{1, 16, 512};
  int64_t prompt_len = 128;
  int64_t new_tokens = 32;
  int repeats = 3;
  uint64_t seed = 0;
};

struct DecodeBenchResult {
  int64_t batch = 0;
  double ms_per_step_median = 0, ms_per_step_min = 0;  // one decode step = one new token per sequence
  double prefill_tokens_per_s = 0;
  int64_t kv_cache_bytes = 0;  // the cache for prompt + new tokens
  int64_t peak_bytes = 0;      // CPU: peak RSS during the run (VmHWM, reset per batch); CUDA: max allocated
};

std::vector<DecodeBenchResult> decode_bench(const Model& model, const DecodeBenchOptions& opts);

}  // namespace gqa
