// ROUGE of generated summaries: for JSONL records with a source and a reference field (the shared
// set: Debian long description -> synopsis), the model writes a summary (greedy or beam search,
// length-limited)
// and ROUGE-1/2/L F-measures (eval/rouge, equal to the rouge-score package) are averaged.
// Encoder-decoder models read the source; decoder-only models continue a prompt
// "<source>\nSummary:" and their summary ends at the first newline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "core/tokenizers/tokenizer.h"
#include "eval/rouge.h"

namespace gqa {

struct SummaryOptions {
  std::string source_field = "document", target_field = "summary";
  int64_t max_examples = 200;  // the first N records
  int64_t max_source_tokens = 384;
  int64_t max_new_tokens = 48;
  int64_t batch = 8;
  int64_t beams = 1;  // > 1: beam search
  double length_penalty = 1.0;
  std::string prompt_suffix = "\nSummary:";  // decoder-only prompt after the source
};

struct SummaryResult {
  RougeScores mean;  // F-measures averaged over examples (P/R too)
  int64_t examples = 0;
  std::vector<std::string> predictions;  // in file order
};

SummaryResult summarize_rouge(const Model& model, const Tokenizer& tokenizer, const std::string& jsonl_path,
                              const SummaryOptions& opts);

}  // namespace gqa
