// Text generation with the KV cache: greedy, sampling (temperature, top-k, top-p) or beam search,
// batched with left padding for decoder-only models and right-padded sources for encoder-decoder
// models.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/model/model.h"

namespace gqa {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  bool sample = false;  // false: greedy
  double temperature = 1.0;
  int64_t top_k = 0;   // 0: no limit
  double top_p = 1.0;  // 1: no nucleus cut
  uint64_t seed = 0;
  std::optional<int64_t> eos_id;  // stop a sequence when it emits this id
  // Beam search when > 1 (and not sampling), with transformers' semantics: a hypothesis scores its
  // summed log-probability / generated_length^length_penalty; early_stopping false stops a prompt
  // once no running beam can beat its worst finished one at the current length.
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  bool early_stopping = false;
};

// Returns the new tokens of each prompt (prompt excluded, EOS included when emitted); for beam
// search, those of the best hypothesis.
std::vector<std::vector<int64_t>> generate(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& opts);

// Picks the next token per row of `logits` [B, V] (float), greedy or sampled.
at::Tensor pick_next(const at::Tensor& logits, const GenerateOptions& opts, at::Generator& gen);

}  // namespace gqa
