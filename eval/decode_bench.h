// Decode speed of a model as users see it: a batch of prompts prefilled into a preallocated KV
// cache, then one token per sequence per step (greedy, no recompute). Time per decoded token is
// the median (and min) over repeats after one warm-up run; prefill throughput, KV-cache bytes and
// peak memory (CPU resident set, or CUDA max allocated) are reported beside it. Also the pieces of
// `gqa bench decode`: the attention of one decode step timed alone, and the device's copy
// bandwidth to compare it with.
#pragma once
#include <cstdint>
#include <vector>

#include "core/model/model.h"
#include "eval/interleaved_timing.h"

namespace gqa {

struct DecodeBenchOptions {
  std::vector<int64_t> batches{1, 16, 512};
  int64_t prompt_len = 128;
  int64_t new_tokens = 32;
  int repeats = 3;
  uint64_t seed = 0;
  // Decoder-only models: prefill the prompt in chunks of tokens small enough that
  // batch x chunk x max(query heads x cache slots, vocabulary) stays under 2^28 elements (the
  // prefill's attention mask/scores and logits), so a long prompt at a large batch fits in memory.
  // Prefill is not part of the time per decoded token either way.
  bool chunked_prefill = false;
};

struct DecodeBenchResult {
  int64_t batch = 0;
  double ms_per_step_median = 0, ms_per_step_min = 0;  // one decode step = one new token per sequence
  double prefill_tokens_per_s = 0;
  int64_t kv_cache_bytes = 0;  // the cache for prompt + new tokens
  int64_t peak_bytes = 0;      // CPU: peak RSS (VmHWM), CUDA: peak allocated bytes; reset per batch size
};

std::vector<DecodeBenchResult> decode_bench(const Model& model, const DecodeBenchOptions& opts);

// decode_bench's time per decode step for a model and its baseline (or any few models) on a busy
// machine: per batch size their runs take turns (interleaved_timing.h: one warm-up round, then
// opts.repeats rounds of A, B), each reporting its minimum with the spread beside it, and a pass
// whose repeats disagree by more than noisy_spread is measured once more. Every model decodes the
// same prompts (random tokens below the smallest vocabulary). Prefill and peak memory are not
// reported: with several models in one process there is no per-model peak.
struct InterleavedDecodeResult {
  int64_t batch = 0;
  InterleavedTiming timing;  // seconds per decode step; one run per model, in the order given
};
std::vector<InterleavedDecodeResult> decode_bench_interleaved(const std::vector<const Model*>& models,
                                                              const DecodeBenchOptions& opts,
                                                              double noisy_spread = kDefaultNoisySpread);

// Prompt tokens per prefill forward under DecodeBenchOptions::chunked_prefill.
int64_t prefill_chunk_tokens(const Model& model, int64_t batch, int64_t capacity);

// The attention of one decode step alone: every decoder self-attention layer's grouped attention
// (Attention::attend_heads, the code the model's forward runs; a latent layer's one-entry attention
// of its absorbed queries, as LatentAttention runs it) of one new query token per sequence over a
// KVCache filled with `context` tokens, without projections, rotary embeddings or FFN.
// Median and min over repeats after a warm-up; each repeat runs enough back-to-back steps to last
// a few milliseconds and reports the time per step.
struct AttentionBenchResult {
  int64_t batch = 0, context = 0;
  double ms_median = 0, ms_min = 0;  // all layers, one step
  int64_t kv_bytes = 0;              // K + V of the `context` filled slots, all layers: what a step reads
  int64_t bytes_read = 0;            // kv_bytes + queries + outputs (the mask is not counted)
  double gb_per_s() const { return ms_median > 0 ? double(bytes_read) / (ms_median * 1e-3) / 1e9 : 0; }
};
AttentionBenchResult attention_bench(Model& model, int64_t batch, int64_t context, int repeats);

// The device's copy bandwidth: dst.copy_(src) of a `bytes`-sized float tensor, bytes read + written
// (2 x bytes) / time, median (and best) over repeats after a warm-up.
struct CopyBenchResult {
  int64_t bytes = 0;  // size of the tensor copied
  double gb_per_s = 0, gb_per_s_best = 0;
};
CopyBenchResult copy_bandwidth(const at::Device& device, int64_t bytes, int repeats);

}  // namespace gqa
