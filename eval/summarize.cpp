#include "eval/summarize.h"

#include <ATen/core/grad_mode.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/jsonl.h"
#include "core/model/generate.h"

namespace gqa {

SummaryResult summarize_rouge(const Model& model, const Tokenizer& tokenizer, const std::string& path,
                              const SummaryOptions& o) {
  at::NoGradGuard no_grad;
  std::vector<std::string> lines;
  if (!files::read_lines(path, &lines)) throw InputError(path, "", "cannot open summarization data");
  std::vector<std::string> sources, targets;
  for (size_t i = 0; i < lines.size() && int64_t(sources.size()) < o.max_examples; ++i) {
    const std::string where = path + ":" + std::to_string(i + 1);
    const std::optional<nlohmann::json> j = parse_jsonl_line(lines[i], where);
    if (!j) continue;
    sources.push_back(jsonl_string_field(*j, o.source_field, where));
    targets.push_back(jsonl_string_field(*j, o.target_field, where));
  }
  if (sources.empty()) throw InputError(path, "", "no summarization records");

  const ModelConfig& c = model.config();
  const bool seq2seq = model.is_encoder_decoder();
  // Decoder-only prompts must leave room for the summary inside the model's positions.
  int64_t source_budget = o.max_source_tokens;
  if (!seq2seq && c.max_positions > 0) source_budget = std::min(source_budget, c.max_positions - o.max_new_tokens - 8);
  if (source_budget < 1) throw InputError(c.path, "max_position_embeddings", "too small for --max-new-tokens");
  const std::vector<int64_t> suffix = tokenizer.encode(o.prompt_suffix);
  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.num_beams = o.beams;
  g.length_penalty = o.length_penalty;
  g.eos_id = tokenizer.eos_id() ? tokenizer.eos_id() : c.eos_token_id;

  SummaryResult r;
  const RougeScorer scorer(/*use_stemmer=*/true);
  std::vector<RougeScores> scores;
  for (size_t start = 0; start < sources.size(); start += size_t(o.batch)) {
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = start; i < std::min(sources.size(), start + size_t(o.batch)); ++i) {
      std::vector<int64_t> ids = seq2seq ? tokenizer.encode_with_special(sources[i]) : tokenizer.encode(sources[i]);
      if (int64_t(ids.size()) > source_budget) {
        const bool keep_last = seq2seq && !tokenizer.suffix_ids.empty();  // keep T5's closing </s>
        ids.resize(size_t(source_budget));
        if (keep_last) ids.back() = tokenizer.suffix_ids.back();
      }
      if (!seq2seq) ids.insert(ids.end(), suffix.begin(), suffix.end());
      prompts.push_back(std::move(ids));
    }
    const auto outputs = generate(model, prompts, g);
    for (size_t k = 0; k < outputs.size(); ++k) {
      std::string text = tokenizer.decode(outputs[k], /*skip_special=*/true);
      if (!seq2seq) text = text.substr(0, text.find('\n'));
      const size_t i = start + k;
      scores.push_back(scorer.score(targets[i], text));
      r.predictions.push_back(std::move(text));
    }
  }
  r.mean = mean_scores(scores);
  r.examples = int64_t(scores.size());
  return r;
}

}  // namespace gqa
