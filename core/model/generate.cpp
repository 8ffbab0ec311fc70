#include "core/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

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

std::vector<std::vector<int64_t>> generate(const Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& opts) {
  const int64_t B = int64_t(prompts.size());
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  if (B == 0 || opts.max_new_tokens <= 0) return out;
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const ModelConfig& cfg = model.config();
  const auto dev = model.placement().device;
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);

  // Padded prompt batch: left-padded for decoders (new tokens line up at the end), right-padded
  // for an encoder. Every prompt needs at least one token for a decoder to continue from.
  const bool seq2seq = model.is_encoder_decoder();
  at::Tensor ids = at::zeros({B, int64_t(longest)}, at::kLong), mask = at::zeros({B, int64_t(longest)}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[size_t(b)];
    if (p.empty() && !seq2seq) throw InputError("prompt", std::to_string(b), "is empty: a decoder-only model needs at least one token");
    const int64_t off = seq2seq ? 0 : int64_t(longest - p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      ids[b][off + int64_t(i)] = p[i];
      mask[b][off + int64_t(i)] = 1;
    }
  }
  ids = ids.to(dev);
  mask = mask.to(dev);

  std::optional<Memory> memory;
  at::Tensor next_input;
  int64_t capacity = int64_t(longest) + opts.max_new_tokens;
  if (seq2seq) {
    memory = model.encode(ids, mask);
    next_input = at::full({B, 1}, cfg.decoder_start_token_id.value_or(0), at::TensorOptions().dtype(at::kLong).device(dev));
    capacity = opts.max_new_tokens + 1;
  }
  KVCache cache = model.new_cache(B, capacity);
  at::Tensor logits = seq2seq ? model.forward(next_input, at::ones_like(next_input), &cache, &*memory)
                              : model.forward(ids, mask, &cache);
  std::vector<bool> done(size_t(B), false);
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    at::Tensor next = pick_next(logits.select(1, logits.size(1) - 1), opts, gen);  // [B]
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
    logits = model.forward(step_ids, at::ones_like(step_ids), &cache, memory ? &*memory : nullptr);
  }
  return out;
}

}  // namespace gqa
