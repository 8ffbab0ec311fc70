// Perplexity and bits per byte of a decoder-only model on a token stream, with a sliding window
// when the text is longer than the context: each window scores only the tokens that no earlier
// window scored, with up to `context - stride` tokens of history before them.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/model/model.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa {

struct PerplexityResult {
  double nll_sum = 0;  // natural-log loss summed over scored tokens
  int64_t tokens = 0;  // tokens scored (every token with history inside its window)
  int64_t bytes = 0;   // UTF-8 bytes of the text the tokens came from
  double perplexity() const;
  double bits_per_byte() const;
};

// The window held-out text is scored in when none is given: the model's positions, at most 512.
int64_t default_eval_context(const ModelConfig& c);

// Called after each batch of windows with the tokens scored so far and the total to score.
using PerplexityProgress = std::function<void(int64_t scored, int64_t total)>;

// Memory: the model, one batch's forward and 2^24 floats of logits at a time (the loss is taken in
// chunks of positions), whatever the vocabulary. A OneBlock model (Residency::OneBlock) gets every
// window in one pass, `batch` windows at a time inside each block.
PerplexityResult perplexity(const Model& model, const std::vector<int64_t>& ids, int64_t text_bytes, int64_t context,
                            int64_t stride, int64_t batch = 8, const PerplexityProgress& progress = {},
                            int64_t chunk_rows = 0);  // logits rows at once; 0: 2^24 floats' worth

// The first `scored_tokens` + 1 tokens of a text file (plain or .gz), so that perplexity() scores
// exactly `scored_tokens` of them when the text is long enough (the first token has no history),
// and the UTF-8 bytes they cover, for bits per byte. Throws InputError when the file is missing,
// empty or shorter than two tokens.
std::pair<std::vector<int64_t>, int64_t> read_eval_tokens(const Tokenizer& tokenizer, const std::string& path,
                                                          int64_t scored_tokens);

}  // namespace gqa
