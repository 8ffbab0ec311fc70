// Minimal-pair accuracy (BLiMP format): for each JSONL record with `sentence_good` and
// `sentence_bad`, the model should give the good sentence the higher total log-probability. Each
// sentence is scored after one context token (BOS, else EOS, as lm-eval-harness does for GPT-2),
// every token of it counted; T5 scores the sentence as a decoder target of an empty source.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa {

struct MinimalPair {
  std::string good, bad, phenomenon;  // phenomenon: the record's "UID"/"phenomenon" field or the file name
};

struct MinimalPairResult {
  int64_t pairs = 0, correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_phenomenon;  // correct, pairs
  double accuracy() const { return pairs ? double(correct) / double(pairs) : 0.0; }
};

// Reads BLiMP JSONL files (plain or .gz); InputError naming file:line for a record without the fields.
std::vector<MinimalPair> read_minimal_pairs(const std::vector<std::string>& paths);

// Total log-probability (natural log) of each sentence under the model, in batches.
std::vector<double> sentence_log_probs(const Model& model, const Tokenizer& tokenizer,
                                       const std::vector<std::string>& sentences, int64_t batch = 16);

MinimalPairResult minimal_pair_accuracy(const Model& model, const Tokenizer& tokenizer,
                                        const std::vector<MinimalPair>& pairs, int64_t batch = 16);

}  // namespace gqa
