#include "convert/calibration.h"


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
  if (head.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(text_file, "", "calibration text is empty");
  std::vector<int64_t> ids = load_tokenizer(model_dir)->encode(head);
  if (int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  if (int64_t(ids.size()) < seq_len)
    throw InputError(text_file, "", "calibration text is too short: " + std::to_string(ids.size()) + " tokens, need at least " +
                                        std::to_string(seq_len) + " (one sequence)");
  std::vector<std::vector<int64_t>> seqs;
  for (size_t at = 0; at + size_t(seq_len) <= ids.size(); at += size_t(seq_len))
    seqs.emplace_back(ids.begin() + int64_t(at), ids.begin() + int64_t(at) + seq_len);
  return seqs;
}

CalibrationMap collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences, int64_t batch) {
  // Accumulated in float64 on the host: Gram sums over ~1e5 tokens lose digits in float32.
  struct Sums {
    at::Tensor gram, sum;
    int64_t tokens = 0;
  };
  std::map<std::pair<AttentionModule, int64_t>, Sums> sums;
  model.set_observer([&](AttentionModule mod, int64_t layer, const at::Tensor& x, const at::Tensor& mask) {
    at::Tensor rows = x.reshape({-1, x.size(-1)}).index({mask.reshape({-1}).to(at::kBool)}).to(at::kDouble).cpu();
    Sums& s = sums[{mod, layer}];
    if (!s.gram.defined()) {
      s.gram = at::zeros({x.size(-1), x.size(-1)}, at::kDouble);
      s.sum = at::zeros({x.size(-1)}, at::kDouble);
    }
    s.gram += rows.t().matmul(rows);
    s.sum += rows.sum(0);
    s.tokens += rows.size(0);
  });
  const auto dev = model.placement().device;
  for (size_t first = 0; first < sequences.size(); first += size_t(batch)) {
    const size_t n = std::min(sequences.size() - first, size_t(batch));
    const int64_t len = int64_t(sequences[first].size());
    at::Tensor ids = at::empty({int64_t(n), len}, at::kLong);
    for (size_t b = 0; b < n; ++b)
      for (int64_t t = 0; t < len; ++t) ids[int64_t(b)][t] = sequences[first + b][size_t(t)];
    ids = ids.to(dev);
    at::Tensor mask = at::ones_like(ids);
    if (model.is_encoder_decoder()) {
      // The text goes through the encoder; the decoder reads it too, shifted right behind the
      // start token (teacher forcing), so its self- and cross-attention see real inputs.
      Memory mem = model.encode(ids, mask);
      at::Tensor start = at::full({int64_t(n), 1}, model.config().decoder_start_token_id.value_or(0), ids.options());
      at::Tensor dec = at::cat({start, ids.narrow(1, 0, len - 1)}, 1);
      model.forward(dec, mask, nullptr, &mem);
    } else {
      model.forward(ids, mask);
    }
  }
  model.set_observer(nullptr);
  CalibrationMap out;
  for (auto& [key, s] : sums) {
    BlockCalibration c;
    at::Tensor g = s.gram.to(at::kFloat).contiguous(), v = s.sum.to(at::kFloat).contiguous();
    c.input_gram = Eigen::Map<const Matrix>(g.data_ptr<float>(), g.size(0), g.size(1));
    c.input_sum = Eigen::Map<const Vector>(v.data_ptr<float>(), v.size(0));
    c.tokens = s.tokens;
    out[key] = std::move(c);
  }
  return out;
}

}  // namespace gqa
