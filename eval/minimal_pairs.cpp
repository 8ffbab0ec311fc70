#include "eval/minimal_pairs.h"

#include <ATen/core/grad_mode.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/jsonl.h"

namespace gqa {
namespace {

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const char* ext : {".gz", ".jsonl"})
    if (name.size() > std::strlen(ext) && name.compare(name.size() - std::strlen(ext), std::strlen(ext), ext) == 0)
      name.resize(name.size() - std::strlen(ext));
  return name;
}

}  // namespace

std::vector<MinimalPair> read_minimal_pairs(const std::vector<std::string>& paths) {
  std::vector<MinimalPair> out;
  for (const std::string& path : paths) {
    std::vector<std::string> lines;
    if (!files::read_lines(path, &lines)) throw InputError(path, "", "cannot open minimal-pair file");
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string where = path + ":" + std::to_string(i + 1);
      const std::optional<nlohmann::json> j = parse_jsonl_line(lines[i], where);
      if (!j) continue;
      MinimalPair p{jsonl_string_field(*j, "sentence_good", where), jsonl_string_field(*j, "sentence_bad", where),
                    base_name(path)};
      for (const char* field : {"UID", "phenomenon"})
        if (j->contains(field) && (*j)[field].is_string()) p.phenomenon = (*j)[field].get<std::string>();
      out.push_back(std::move(p));
    }
  }
  if (out.empty()) throw InputError(paths.empty() ? "" : paths[0], "", "no minimal pairs found");
  return out;
}

std::vector<double> sentence_log_probs(const Model& model, const Tokenizer& tokenizer,
                                       const std::vector<std::string>& sentences, int64_t batch) {
  at::NoGradGuard no_grad;
  const ModelConfig& c = model.config();
  const auto device = model.placement().device;
  const int64_t context = tokenizer.bos_id()   ? *tokenizer.bos_id()
                          : tokenizer.eos_id() ? *tokenizer.eos_id()
                                               : c.bos_token_id.value_or(c.eos_token_id.value_or(0));
  std::vector<double> out;
  for (size_t start = 0; start < sentences.size(); start += size_t(batch)) {
    const size_t end = std::min(sentences.size(), start + size_t(batch));
    // Decoder input: [context] + tokens (right-padded); targets: the tokens.
    std::vector<std::vector<int64_t>> toks;
    int64_t longest = 1;
    for (size_t i = start; i < end; ++i) {
      toks.push_back(tokenizer.encode(sentences[i]));
      longest = std::max<int64_t>(longest, int64_t(toks.back().size()));
    }
    const int64_t B = int64_t(toks.size());
    at::Tensor input = at::zeros({B, longest}, at::kLong), target = at::full({B, longest}, -1, at::kLong);
    at::Tensor mask = at::zeros({B, longest}, at::kLong);
    const int64_t start_id = model.is_encoder_decoder() ? c.decoder_start_token_id.value_or(0) : context;
    for (int64_t b = 0; b < B; ++b) {
      const auto& t = toks[size_t(b)];
      for (size_t i = 0; i < t.size(); ++i) {
        input[b][int64_t(i)] = i == 0 ? start_id : t[i - 1];
        target[b][int64_t(i)] = t[i];
        mask[b][int64_t(i)] = 1;
      }
      if (t.empty()) {
        input[b][0] = start_id;
        mask[b][0] = 1;
      }
    }
    input = input.to(device);
    mask = mask.to(device);
    at::Tensor logits;
    if (model.is_encoder_decoder()) {
      const std::vector<int64_t> empty = tokenizer.encode_with_special("");
      at::Tensor src = at::tensor(empty.empty() ? std::vector<int64_t>{0} : empty, at::kLong)
                           .unsqueeze(0)
                           .expand({B, -1})
                           .contiguous()
                           .to(device);
      const Memory memory = model.encode(src, at::ones_like(src));
      logits = model.forward(input, at::ones_like(input), nullptr, &memory);
    } else {
      logits = model.forward(input, mask);
    }
    at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1).cpu();
    at::Tensor keep = target >= 0;
    at::Tensor picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1) * keep.to(at::kFloat);
    at::Tensor sums = picked.sum(1).to(at::kDouble);
    for (int64_t b = 0; b < B; ++b) out.push_back(sums[b].item<double>());
  }
  return out;
}

MinimalPairResult minimal_pair_accuracy(const Model& model, const Tokenizer& tokenizer,
                                        const std::vector<MinimalPair>& pairs, int64_t batch) {
  std::vector<std::string> sentences;
  for (const auto& p : pairs) {
    sentences.push_back(p.good);
    sentences.push_back(p.bad);
  }
  const std::vector<double> lp = sentence_log_probs(model, tokenizer, sentences, batch);
  MinimalPairResult r;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const bool right = lp[2 * i] > lp[2 * i + 1];
    ++r.pairs;
    r.correct += right;
    auto& [c, n] = r.by_phenomenon[pairs[i].phenomenon];
    c += right;
    ++n;
  }
  return r;
}

}  // namespace gqa
