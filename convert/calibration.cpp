#include "convert/calibration.h"

#include <chrono>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa {

std::vector<std::vector<int64_t>> calibration_sequences(const std::string& model_dir, const std::string& text_file,
                                                        int64_t max_tokens, int64_t seq_len) {
  // Only as much text as the token budget needs (a generous 8 bytes per token), so a large file
  // costs no more than a small one.
  std::string head;
  if (!files::read_text_prefix(text_file, size_t(std::max<int64_t>(1, max_tokens) * 8), &head))
    throw InputError(text_file, "", "cannot open calibration text");
  if (head.find_first_not_of(" \t\r\n") == std::string::npos)
    throw InputError(text_file, "", "calibration text is empty");
  std::vector<int64_t> ids = load_tokenizer(model_dir)->encode(head);
  if (int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  if (int64_t(ids.size()) < seq_len)
    throw InputError(text_file, "",
                     "calibration text is too short: " + std::to_string(ids.size()) + " tokens, need at least " +
                         std::to_string(seq_len) + " (one sequence)");
  std::vector<std::vector<int64_t>> seqs;
  for (size_t at = 0; at + size_t(seq_len) <= ids.size(); at += size_t(seq_len))
    seqs.emplace_back(ids.begin() + int64_t(at), ids.begin() + int64_t(at) + seq_len);
  return seqs;
}

namespace {

// A model's input for calibration: the sequences as one [N, T] id tensor.
at::Tensor id_tensor(const std::vector<std::vector<int64_t>>& sequences, size_t first, size_t n) {
  const int64_t len = int64_t(sequences[first].size());
  at::Tensor ids = at::empty({int64_t(n), len}, at::kLong);
  auto a = ids.accessor<int64_t, 2>();
  for (size_t b = 0; b < n; ++b)
    for (int64_t t = 0; t < len; ++t) a[int64_t(b)][t] = sequences[first + b][size_t(t)];
  return ids;
}

// The stack a block belongs to: a OneBlock pass finishes a (stack, layer) before the next starts.
std::pair<bool, int64_t> stack_layer(const BlockKey& k) { return {k.first == AttentionModule::EncoderSelf, k.second}; }

}  // namespace

void collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences, CalibrationStore& into,
                         int64_t batch, CalibrationTiming* timing) {
  // Accumulated in float64 on the host: Gram sums over ~1e5 tokens lose digits in float32.
  struct Sums {
    at::Tensor gram, sum;
    int64_t tokens = 0;
  };
  std::map<BlockKey, Sums> pending;
  const auto finish = [&](const BlockKey& key) {
    Sums& s = pending.at(key);
    BlockCalibration c;
    at::Tensor g = s.gram.to(at::kFloat).contiguous(), v = s.sum.to(at::kFloat).contiguous();
    c.input_gram = Eigen::Map<const Matrix>(g.data_ptr<float>(), g.size(0), g.size(1));
    c.input_sum = Eigen::Map<const Vector>(v.data_ptr<float>(), v.size(0));
    c.tokens = s.tokens;
    pending.erase(key);
    into.put(key, std::move(c));
  };
  const bool streamed = model.residency() == Residency::OneBlock;
  double statistics_seconds = 0;
  const auto started = std::chrono::steady_clock::now();
  model.set_observer([&](AttentionModule mod, int64_t layer, const at::Tensor& x, const at::Tensor& mask) {
    const auto t0 = std::chrono::steady_clock::now();
    const BlockKey key{mod, layer};
    if (streamed) {  // a new (stack, layer) means every other pending block has seen all its tokens
      std::vector<BlockKey> done;
      for (const auto& [k, s] : pending)
        if (stack_layer(k) != stack_layer(key)) done.push_back(k);
      for (const BlockKey& k : done) finish(k);
    }
    at::Tensor rows = x.reshape({-1, x.size(-1)}).index({mask.reshape({-1}).to(at::kBool)}).to(at::kDouble).cpu();
    Sums& s = pending[key];
    if (!s.gram.defined()) {
      s.gram = at::zeros({x.size(-1), x.size(-1)}, at::kDouble);
      s.sum = at::zeros({x.size(-1)}, at::kDouble);
    }
    s.gram += rows.t().matmul(rows);
    s.sum += rows.sum(0);
    s.tokens += rows.size(0);
    statistics_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  struct ObserverReset {
    Model& m;
    ~ObserverReset() { m.set_observer(nullptr); }
  } reset{model};
  const auto dev = model.placement().device;
  // hidden(), not forward(): the statistics are taken before the head, and logits of every
  // calibration token (16,384 x 32,000 floats for Llama-2) would be the pass's largest tensor.
  const auto run = [&](const at::Tensor& ids) {
    const at::Tensor mask = at::ones_like(ids);
    if (model.is_encoder_decoder()) {
      // The text goes through the encoder; the decoder reads it too, shifted right behind the
      // start token (teacher forcing), so its self- and cross-attention see real inputs.
      const Memory mem = model.encode(ids, mask);
      at::Tensor start = at::full({ids.size(0), 1}, model.config().decoder_start_token_id.value_or(0), ids.options());
      at::Tensor dec = at::cat({start, ids.narrow(1, 0, ids.size(1) - 1)}, 1);
      model.hidden(dec, mask, nullptr, &mem);
    } else {
      model.hidden(ids, mask);
    }
  };
  if (streamed) {
    model.set_stream_batch(batch);
    run(id_tensor(sequences, 0, sequences.size()).to(dev));
  } else {
    for (size_t first = 0; first < sequences.size(); first += size_t(batch))
      run(id_tensor(sequences, first, std::min(sequences.size() - first, size_t(batch))).to(dev));
  }
  while (!pending.empty()) finish(pending.begin()->first);
  if (timing) {
    timing->tokens = 0;
    for (const auto& s : sequences) timing->tokens += int64_t(s.size());
    timing->total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    timing->statistics_seconds = statistics_seconds;
  }
}

CalibrationStore collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences, int64_t batch) {
  CalibrationStore store;
  collect_calibration(model, sequences, store, batch);
  return store;
}

}  // namespace gqa
