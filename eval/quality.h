// A model's quality as `gqa eval` and `gqa compare` both measure it: held-out perplexity and bits
// per byte (sliding window), minimal-pair accuracy, and ROUGE of generated summaries. One options
// struct holds the defaults `gqa eval --help` documents, so the two verbs measure alike.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "core/tokenizers/tokenizer.h"
#include "eval/minimal_pairs.h"
#include "eval/perplexity.h"
#include "eval/summarize.h"

namespace gqa {

struct QualityOptions {
  std::vector<std::string> text;  // held-out text files (plain or .gz): perplexity, bits per byte
  int64_t max_tokens = 16384;     // tokens scored per text file
  int64_t context = 0;            // window length; 0: default_eval_context (min(model positions, 512))
  int64_t stride = 0;             // window step; 0: context / 2
  int64_t batch = 8;              // windows, or minimal-pair sentences, per forward
  std::string summaries;          // JSONL source/reference pairs: ROUGE-1/2/L ("" = none)
  SummaryOptions summary;         // 200 records, greedy, summaries of up to 48 tokens

  int64_t context_for(const ModelConfig& config) const;  // the window length for this model
  int64_t stride_for(int64_t context) const;             // the window step for that length
};

struct TextQuality {
  std::string file;
  int64_t context = 0;  // the window length it was scored with
  PerplexityResult result;
};

struct QualityResult {
  std::vector<TextQuality> texts;                  // one per text file, in order
  std::optional<MinimalPairResult> minimal_pairs;  // when pairs were given
  std::optional<SummaryResult> summaries;          // when a summaries file was given
};

// Hooks for a caller that reports as it goes (gqa eval prints each result as it is measured);
// every one is optional.
struct QualityHooks {
  std::function<PerplexityProgress(const std::string& file)> scoring;  // progress while a text is scored
  std::function<void(const TextQuality&)> text_measured;
  std::function<void(const MinimalPairResult&)> pairs_measured;
  std::function<void(const SummaryResult&)> summaries_measured;
};

// Measures each text file, then the minimal pairs (none given: skipped), then the summaries.
// Throws InputError for a context beyond the model's positions (field "--context") and for bad
// data files.
QualityResult measure_quality(const Model& model, const Tokenizer& tokenizer, const std::vector<MinimalPair>& pairs,
                              const QualityOptions& options, const QualityHooks& hooks = {});

}  // namespace gqa
