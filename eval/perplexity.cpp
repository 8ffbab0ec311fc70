#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/files.h"

namespace gqa {

double PerplexityResult::perplexity() const { return tokens ? std::exp(nll_sum / double(tokens)) : NAN; }
double PerplexityResult::bits_per_byte() const { return bytes ? nll_sum / std::log(2.0) / double(bytes) : NAN; }

namespace {

// Rows of logits computed at once when turning hidden states into log-probabilities: 2^24 floats
// (64 MiB) per chunk instead of batch x context x vocabulary (8 x 512 x 50,257 floats = 0.8 GiB;
// Qwen's 152k vocabulary triples that).
int64_t loss_chunk_rows(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(1, vocab));
}

}  // namespace

PerplexityResult perplexity(const Model& model, const std::vector<int64_t>& ids, int64_t text_bytes, int64_t context,
                            int64_t stride, int64_t batch, const PerplexityProgress& progress, int64_t chunk_rows) {
  if (model.is_encoder_decoder())
    throw InputError(model.config().path, "model_type",
                     "perplexity needs a decoder-only model (T5 is scored by ROUGE)");
  if (ids.size() < 2) throw InputError("eval text", "", "needs at least two tokens");
  if (context < 2 || stride < 1 || stride > context)
    throw InputError("perplexity", "context/stride", "need 1 <= stride <= context, context >= 2");
  const int64_t n = int64_t(ids.size());
  // Windows [begin, begin + context); window w scores targets from max(begin + 1, end of w-1): a
  // window's first token has no history inside it (with stride == context it goes unscored).
  struct Window {
    int64_t begin, len, first_scored;
  };
  std::vector<Window> windows;
  int64_t scored_up_to = 1;  // next target position not yet scored
  for (int64_t begin = 0; scored_up_to < n; begin += stride) {
    const int64_t len = std::min(context, n - begin);
    windows.push_back({begin, len, std::max(scored_up_to, begin + 1)});
    scored_up_to = begin + len;
  }
  PerplexityResult r;
  r.bytes = text_bytes;
  const auto dev = model.placement().device;
  // A OneBlock model runs every window in one pass (block by block, `batch` windows at a time).
  const bool streamed = model.residency() == Residency::OneBlock;
  const size_t group = streamed ? windows.size() : size_t(batch);
  if (streamed) model.set_stream_batch(batch);
  const int64_t chunk = chunk_rows > 0 ? chunk_rows : loss_chunk_rows(model.config().vocab_size);
  for (size_t first = 0; first < windows.size(); first += group) {
    const size_t count = std::min(windows.size() - first, group);
    int64_t len = 0;
    for (size_t i = 0; i < count; ++i) len = std::max(len, windows[first + i].len);
    // Right-padded batch: the causal mask keeps padding out of every real token's view.
    at::Tensor tok = at::zeros({int64_t(count), len}, at::kLong), mask = at::zeros({int64_t(count), len}, at::kLong);
    std::vector<int64_t> rows, targets;  // hidden row (window, position) predicting each scored token
    for (size_t i = 0; i < count; ++i) {
      const Window& w = windows[first + i];
      for (int64_t t = 0; t < w.len; ++t) {
        tok[int64_t(i)][t] = ids[size_t(w.begin + t)];
        mask[int64_t(i)][t] = 1;
      }
      for (int64_t target = w.first_scored; target < w.begin + w.len; ++target) {
        rows.push_back(int64_t(i) * len + (target - w.begin - 1));  // predicted from position pos - 1
        targets.push_back(ids[size_t(target)]);
      }
    }
    const at::Tensor h = model.hidden(tok.to(dev), mask.to(dev));
    const at::Tensor picked = h.reshape({-1, h.size(-1)}).index_select(0, at::tensor(rows, at::kLong).to(dev));
    const at::Tensor target_ids = at::tensor(targets, at::kLong).to(dev);
    for (int64_t c0 = 0; c0 < int64_t(rows.size()); c0 += chunk) {
      const int64_t cn = std::min<int64_t>(chunk, int64_t(rows.size()) - c0);
      const at::Tensor logp = model.logits(picked.narrow(0, c0, cn)).to(at::kFloat).log_softmax(-1);
      const at::Tensor lp = logp.gather(1, target_ids.narrow(0, c0, cn).unsqueeze(1)).squeeze(1).cpu().contiguous();
      const float* v = lp.data_ptr<float>();
      for (int64_t i = 0; i < cn; ++i) r.nll_sum -= double(v[i]);
    }
    r.tokens += int64_t(rows.size());
    if (progress) progress(r.tokens, n - 1);
  }
  return r;
}

std::pair<std::vector<int64_t>, int64_t> read_eval_tokens(const Tokenizer& tokenizer, const std::string& path,
                                                          int64_t scored_tokens) {
  // The first token has no history and is never scored: one more is read than are scored.
  const int64_t wanted = std::max<int64_t>(1, scored_tokens) + 1;
  // Only as much text as the tokens can need (< 8 bytes each).
  std::string text;
  if (!files::read_text_prefix(path, size_t(wanted * 8), &text))
    throw InputError(path, "", "cannot open evaluation text");
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(path, "", "evaluation text is empty");
  std::vector<int64_t> ids = tokenizer.encode(text);
  if (int64_t(ids.size()) > wanted) ids.resize(size_t(wanted));
  if (ids.size() < 2) throw InputError(path, "", "evaluation text is too short");
  return {ids, int64_t(tokenizer.decode(ids, false).size())};
}

int64_t default_eval_context(const ModelConfig& c) {
  return c.max_positions > 0 ? std::min<int64_t>(c.max_positions, 512) : 512;
}

}  // namespace gqa
