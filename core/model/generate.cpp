#include "core/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gqa {

at::Tensor pick_next(const at::Tensor& logits_in, const GenerateOptions& opts, at::Generator& gen) {
  if (!opts.sample) return logits_in.argmax(-1);
  at::Tensor logits = logits_in.to(at::kFloat).cpu() / std::max(opts.temperature, 1e-6);
  if (opts.top_k > 0 && opts.top_k < logits.size(-1)) {
    at::Tensor kth = std::get<0>(logits.topk(opts.top_k, -1)).narrow(-1, opts.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (opts.top_p < 1.0) {  // keep the smallest set of tokens whose probability reaches top_p
    auto [sorted, order] = logits.sort(-1, /*descending=*/true);
    at::Tensor cum = sorted.softmax(-1).cumsum(-1);
    at::Tensor drop_sorted = (cum - sorted.softmax(-1)) > opts.top_p;
    at::Tensor drop = at::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    logits = logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  return at::multinomial(logits.softmax(-1), 1, false, gen).squeeze(-1).to(logits_in.device());
}

namespace {

// The batch after its prompts went through the model: the cache holds them, `logits` [B, T, V]
// predicts the first new token from the last position.
struct Started {
  std::optional<Memory> memory;
  KVCache cache;
  at::Tensor logits;
};

Started start(const Model& model, const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens) {
  const int64_t B = int64_t(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const auto dev = model.placement().device;
  // Padded prompt batch: left-padded for decoders (new tokens line up at the end), right-padded
  // for an encoder. Every prompt needs at least one token for a decoder to continue from.
  const bool seq2seq = model.is_encoder_decoder();
  at::Tensor ids = at::zeros({B, int64_t(longest)}, at::kLong), mask = at::zeros({B, int64_t(longest)}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[size_t(b)];
    if (p.empty() && !seq2seq)
      throw InputError("prompt", std::to_string(b), "is empty: a decoder-only model needs at least one token");
    const int64_t off = seq2seq ? 0 : int64_t(longest - p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      ids[b][off + int64_t(i)] = p[i];
      mask[b][off + int64_t(i)] = 1;
    }
  }
  ids = ids.to(dev);
  mask = mask.to(dev);
  if (!seq2seq) {
    KVCache cache = model.new_cache(B, int64_t(longest) + max_new_tokens);
    at::Tensor logits = model.forward(ids, mask, &cache);
    return {std::nullopt, std::move(cache), logits};
  }
  Memory memory = model.encode(ids, mask);
  const at::Tensor first = at::full({B, 1}, model.config().decoder_start_token_id.value_or(0),
                                    at::TensorOptions().dtype(at::kLong).device(dev));
  KVCache cache = model.new_cache(B, max_new_tokens + 1);
  at::Tensor logits = model.forward(first, at::ones_like(first), &cache, &memory);
  return {std::move(memory), std::move(cache), logits};
}

at::Tensor last_position(const at::Tensor& logits) { return logits.select(1, logits.size(1) - 1); }

// transformers' beam search (generation/utils.py _beam_search, early_stopping false or true,
// no sampling): per prompt, the top 2K continuations of K beams; the first K of them that end (EOS
// or the length limit) may enter the K finished hypotheses; the best K that do not end run on.
std::vector<std::vector<int64_t>> beam_search(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                              const GenerateOptions& opts) {
  const int64_t B = int64_t(prompts.size()), K = opts.num_beams, keep = 2 * K;
  constexpr double kNever = -1.0e9;
  Started s = start(model, prompts, opts.max_new_tokens);
  const auto dev = model.placement().device;
  const at::Tensor expand = at::arange(B, at::kLong).repeat_interleave(K);
  s.cache.select_rows(expand);
  if (s.memory)
    s.memory = Memory{s.memory->hidden.index_select(0, expand.to(dev)), s.memory->mask.index_select(0, expand.to(dev))};
  at::Tensor logits = last_position(s.logits).index_select(0, expand.to(dev));  // [B*K, V]

  struct Hypothesis {
    std::vector<int64_t> tokens;
    double score = kNever;
  };
  const size_t nb = size_t(B), nk = size_t(K);
  std::vector<std::vector<std::vector<int64_t>>> running(nb, std::vector<std::vector<int64_t>>(nk));
  std::vector<std::vector<double>> running_score(nb, std::vector<double>(nk, kNever));
  std::vector<std::vector<Hypothesis>> finished(nb, std::vector<Hypothesis>(nk));
  std::vector<bool> can_improve(nb, true);
  for (auto& r : running_score) r[0] = 0.0;  // one live beam per prompt at first: no duplicates

  for (int64_t generated = 0; generated < opts.max_new_tokens; ++generated) {
    const int64_t V = logits.size(-1);
    at::Tensor scores = at::log_softmax(logits.to(at::kFloat), -1).cpu().view({B, K, V});
    at::Tensor prior = at::empty({B, K, 1}, at::kFloat);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k) prior[b][k][0] = float(running_score[size_t(b)][size_t(k)]);
    auto [top_scores, top_index] = (scores + prior).view({B, K * V}).topk(keep, -1);
    const float* ts = top_scores.contiguous().data_ptr<float>();
    const int64_t* ti = top_index.contiguous().data_ptr<int64_t>();
    const bool last = generated + 1 == opts.max_new_tokens;
    std::vector<int64_t> source_rows;
    std::vector<int64_t> next_tokens;
    bool any_can_improve = false, all_full = true;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<std::vector<int64_t>> next_running;
      std::vector<double> next_score;
      const bool full = std::all_of(finished[size_t(b)].begin(), finished[size_t(b)].end(),
                                    [](const Hypothesis& h) { return h.score > kNever; });
      for (int64_t j = 0; j < keep; ++j) {
        const int64_t beam = ti[b * keep + j] / V, token = ti[b * keep + j] % V;
        const double score = ts[b * keep + j];
        const bool ends = last || (opts.eos_id && token == *opts.eos_id);
        std::vector<int64_t> tokens = running[size_t(b)][size_t(beam)];
        tokens.push_back(token);
        if (ends) {
          // Only the first K candidates may finish, and only while they can still improve the set.
          if (j < K && can_improve[size_t(b)] && !(opts.early_stopping && full)) {
            const double normalized = score / std::pow(double(generated + 1), opts.length_penalty);
            auto& fin = finished[size_t(b)];
            auto worst = std::min_element(fin.begin(), fin.end(),
                                          [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; });
            if (normalized > worst->score) *worst = {std::move(tokens), normalized};
          }
        } else if (int64_t(next_running.size()) < K) {
          next_running.push_back(std::move(tokens));
          next_score.push_back(score);
          source_rows.push_back(b * K + beam);
          next_tokens.push_back(token);
        }
      }
      // Every candidate ended (the length limit): keep the rows shaped, scores at "never".
      while (int64_t(next_running.size()) < K) {
        next_running.push_back(running[size_t(b)][0]);
        next_score.push_back(kNever);
        source_rows.push_back(b * K);
        next_tokens.push_back(0);
      }
      std::sort(finished[size_t(b)].begin(), finished[size_t(b)].end(),
                [](const Hypothesis& x, const Hypothesis& y) { return x.score > y.score; });
      running[size_t(b)] = std::move(next_running);
      running_score[size_t(b)] = std::move(next_score);
      // Could the best running beam, ended now at this length, beat the worst finished one?
      const bool now_full = std::all_of(finished[size_t(b)].begin(), finished[size_t(b)].end(),
                                        [](const Hypothesis& h) { return h.score > kNever; });
      const double best_possible = running_score[size_t(b)][0] / std::pow(double(generated + 1), opts.length_penalty);
      if (now_full && best_possible <= finished[size_t(b)].back().score) can_improve[size_t(b)] = false;
      any_can_improve = any_can_improve || can_improve[size_t(b)];
      all_full = all_full && now_full;
    }
    if (last || !any_can_improve || (opts.early_stopping && all_full)) break;
    const at::Tensor rows = at::tensor(source_rows, at::kLong);
    s.cache.select_rows(rows);
    at::Tensor step_ids = at::tensor(next_tokens, at::kLong).view({B * K, 1}).to(dev);
    logits = last_position(model.forward(step_ids, at::ones_like(step_ids), &s.cache, s.memory ? &*s.memory : nullptr));
  }
  std::vector<std::vector<int64_t>> out(nb);
  for (size_t b = 0; b < nb; ++b) out[b] = finished[b].front().tokens;
  return out;
}

}  // namespace

std::vector<std::vector<int64_t>> generate(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& opts) {
  const int64_t B = int64_t(prompts.size());
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  if (B == 0 || opts.max_new_tokens <= 0) return out;
  if (opts.num_beams > 1 && !opts.sample) return beam_search(model, prompts, opts);
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  Started s = start(model, prompts, opts.max_new_tokens);
  at::Tensor logits = s.logits;
  std::vector<bool> done(size_t(B), false);
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    at::Tensor next = pick_next(last_position(logits), opts, gen);  // [B]
    at::Tensor next_cpu = next.cpu();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[size_t(b)]) continue;
      int64_t tok = next_cpu[b].item<int64_t>();
      out[size_t(b)].push_back(tok);
      if (opts.eos_id && tok == *opts.eos_id) done[size_t(b)] = true;
      all_done = all_done && done[size_t(b)];
    }
    if (all_done || step + 1 == opts.max_new_tokens) break;
    at::Tensor step_ids = next.unsqueeze(1);
    logits = model.forward(step_ids, at::ones_like(step_ids), &s.cache, s.memory ? &*s.memory : nullptr);
  }
  return out;
}

}  // namespace gqa
