#include "eval/quality.h"

#include <algorithm>

#include "core/error.h"

namespace gqa {

int64_t QualityOptions::context_for(const ModelConfig& config) const {
  return context > 0 ? context : default_eval_context(config);
}

int64_t QualityOptions::stride_for(int64_t window) const {
  return stride > 0 ? stride : std::max<int64_t>(1, window / 2);
}

QualityResult measure_quality(const Model& model, const Tokenizer& tokenizer, const std::vector<MinimalPair>& pairs,
                              const QualityOptions& o, const QualityHooks& hooks) {
  QualityResult result;
  const ModelConfig& config = model.config();
  const int64_t context = o.context_for(config);
  if (config.max_positions > 0 && context > config.max_positions)
    throw InputError("--context", "", "is beyond the model's " + std::to_string(config.max_positions) + " positions");
  for (const std::string& file : o.text) {
    const auto [ids, bytes] = read_eval_tokens(tokenizer, file, o.max_tokens);
    const PerplexityProgress progress = hooks.scoring ? hooks.scoring(file) : PerplexityProgress{};
    TextQuality text{file, context, perplexity(model, ids, bytes, context, o.stride_for(context), o.batch, progress)};
    if (hooks.text_measured) hooks.text_measured(text);
    result.texts.push_back(std::move(text));
  }
  if (!pairs.empty()) {
    result.minimal_pairs = minimal_pair_accuracy(model, tokenizer, pairs, o.batch);
    if (hooks.pairs_measured) hooks.pairs_measured(*result.minimal_pairs);
  }
  if (!o.summaries.empty()) {
    result.summaries = summarize_rouge(model, tokenizer, o.summaries, o.summary);
    if (hooks.summaries_measured) hooks.summaries_measured(*result.summaries);
  }
  return result;
}

}  // namespace gqa
