// T5 (v1.0 and v1.1/flan): encoder-decoder, RMS LayerNorm without bias, unscaled attention with a
// learned relative position bias shared by all layers of a stack, cross-attention, ReLU or
// gated-GELU feed-forward, and (v1.0) a d_model^-0.5 rescale before the tied lm_head.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/model/attention.h"
#include "core/model/decoder_lm.h"
#include "core/model/model.h"

namespace gqa {
namespace {

struct T5Layer {
  Norm self_norm, cross_norm, ffn_norm;
  Attention self, cross;
  FeedForward ffn;
};

struct T5Stack {
  std::vector<T5Layer> layers;
  at::Tensor relative_bias;  // [buckets, n_q heads]
  Norm final_norm;
};

// T5's bucketing of (key - query) distances: exact for small ones, logarithmic up to max_distance.
at::Tensor relative_bucket(const at::Tensor& relative, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  at::Tensor buckets = at::zeros_like(relative);
  at::Tensor rel = relative;
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (rel > 0).to(at::kLong) * num_buckets;
    rel = rel.abs();
  } else {
    rel = -at::minimum(rel, at::zeros_like(rel));
  }
  const int64_t max_exact = num_buckets / 2;
  at::Tensor is_small = rel < max_exact;
  at::Tensor large = max_exact + (at::log(rel.to(at::kFloat) / double(max_exact)) /
                                  std::log(double(max_distance) / double(max_exact)) * double(num_buckets - max_exact))
                                     .to(at::kLong);
  large = at::minimum(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(is_small, rel, large);
}

// Additive bias [1, H, T, S] for queries at slots start.. and keys at 0..S-1, plus the mask.
at::Tensor position_bias(const T5Stack& stack, const ModelConfig& c, bool bidirectional, int64_t start, int64_t T,
                         const at::Tensor& allow) {
  const int64_t S = allow.size(-1);
  auto opts = at::TensorOptions().device(stack.relative_bias.device()).dtype(at::kLong);
  at::Tensor q_pos = (at::arange(T, opts) + start).unsqueeze(1);
  at::Tensor k_pos = at::arange(S, opts).unsqueeze(0);
  at::Tensor buckets = relative_bucket(k_pos - q_pos, bidirectional, c.relative_buckets, c.relative_max_distance);
  at::Tensor bias = at::embedding(stack.relative_bias, buckets).permute({2, 0, 1}).unsqueeze(0);  // [1, H, T, S]
  const double lowest = std::numeric_limits<float>::lowest();
  return bias + at::where(allow, 0.0, lowest).to(bias.scalar_type());
}

at::Tensor additive(const at::Tensor& allow, at::ScalarType dtype) {
  return at::where(allow, 0.0, double(std::numeric_limits<float>::lowest())).to(dtype);
}

class T5Model : public Model {
 public:
  T5Model(const Checkpoint& ckpt, const Placement& p) : Model(ckpt.config(), p) {
    const ModelConfig& c = config_;
    shared_ = load(ckpt, Stack::Decoder, Role::TokenEmbedding, 0, {c.vocab_size, c.d_model}, p);
    encoder_ = load_stack(ckpt, Stack::Encoder, p);
    decoder_ = load_stack(ckpt, Stack::Decoder, p);
    lm_head_ = load_lm_head(ckpt, shared_, p);
  }

  Memory encode(const at::Tensor& ids, const at::Tensor& mask_in) const override {
    at::Tensor mask = mask_in.defined() ? mask_in : at::ones_like(ids);
    const int64_t T = ids.size(1);
    at::Tensor x = at::embedding(shared_, ids);
    at::Tensor bias = position_bias(encoder_, config_, true, 0, T, attention_mask(mask, 0, T, /*causal=*/false));
    for (size_t l = 0; l < encoder_.layers.size(); ++l) {
      const T5Layer& layer = encoder_.layers[l];
      const at::Tensor h = layer.self_norm(x);
      observe(AttentionModule::EncoderSelf, int64_t(l), h, mask);
      x = x + layer.self.self_attention(h, bias, nullptr, {}, nullptr, 0);
      x = x + layer.ffn(layer.ffn_norm(x));
    }
    return {encoder_.final_norm(x), mask};
  }

  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask_in, KVCache* cache, const Memory* memory,
                     const at::Tensor& /*positions: T5 has none*/) const override {
    if (!memory) throw InputError("t5", "memory", "decoder called without encoder output");
    at::Tensor mask = mask_in.defined() ? mask_in : at::ones_like(ids);
    const int64_t T = ids.size(1);
    const int64_t start = cache ? cache->length() : 0;
    if (cache) cache->begin_step(mask);
    at::Tensor key_valid = cache ? cache->valid_keys(T) : mask;
    at::Tensor x = at::embedding(shared_, ids);
    at::Tensor self_bias = position_bias(decoder_, config_, false, start, T, attention_mask(key_valid, start, T, true));
    at::Tensor cross_mask = additive(memory->mask.to(at::kBool).unsqueeze(1).unsqueeze(1), x.scalar_type());
    if (cache && cache->cross.empty())  // encoder K/V computed once per batch, reused every step
      for (const T5Layer& layer : decoder_.layers) cache->cross.push_back(layer.cross.project_memory(memory->hidden));
    for (size_t l = 0; l < decoder_.layers.size(); ++l) {
      const T5Layer& layer = decoder_.layers[l];
      const at::Tensor h = layer.self_norm(x);
      observe(AttentionModule::DecoderSelf, int64_t(l), h, mask);
      observe(AttentionModule::DecoderCross, int64_t(l), memory->hidden, memory->mask);
      x = x + layer.self.self_attention(h, self_bias, nullptr, {}, cache, l);
      auto mem = cache ? cache->cross[l] : layer.cross.project_memory(memory->hidden);
      x = x + layer.cross.cross_attention(layer.cross_norm(x), mem.first, mem.second, cross_mask);
      x = x + layer.ffn(layer.ffn_norm(x));
    }
    if (cache) cache->end_step(T);
    x = decoder_.final_norm(x);
    if (config_.scale_decoder_outputs) x = x * std::pow(double(config_.d_model), -0.5);
    return at::linear(x, lm_head_);
  }

 private:
  std::vector<AttentionBlock> attention_blocks() override {
    std::vector<AttentionBlock> out;
    for (size_t l = 0; l < encoder_.layers.size(); ++l) out.push_back({AttentionModule::EncoderSelf, int64_t(l), &encoder_.layers[l].self});
    for (size_t l = 0; l < decoder_.layers.size(); ++l) {
      out.push_back({AttentionModule::DecoderSelf, int64_t(l), &decoder_.layers[l].self});
      out.push_back({AttentionModule::DecoderCross, int64_t(l), &decoder_.layers[l].cross});
    }
    return out;
  }

  T5Stack load_stack(const Checkpoint& ckpt, Stack s, const Placement& p) const {
    const ModelConfig& c = config_;
    const bool enc = s == Stack::Encoder;
    const AttentionModule self_module = enc ? AttentionModule::EncoderSelf : AttentionModule::DecoderSelf;
    T5Stack st;
    st.relative_bias = load(ckpt, s, Role::AttnRelativeBias, 0, {c.relative_buckets, c.n_heads}, p);
    for (int64_t l = 0; l < (enc ? c.n_encoder_layers : c.n_layers); ++l) {
      T5Layer layer;
      layer.self_norm = load_norm(ckpt, s, Role::AttnNorm, Role::AttnNormBias, l, true, c.norm_eps, p);
      layer.self = load_attention(ckpt, self_module, l, 1.0, p);
      if (!enc) {
        layer.cross_norm = load_norm(ckpt, s, Role::CrossNorm, Role::CrossNorm, l, true, c.norm_eps, p);
        layer.cross = load_attention(ckpt, AttentionModule::DecoderCross, l, 1.0, p);
      }
      layer.ffn_norm = load_norm(ckpt, s, Role::FfnNorm, Role::FfnNormBias, l, true, c.norm_eps, p);
      layer.ffn = load_feed_forward(ckpt, s, l, p);
      st.layers.push_back(std::move(layer));
    }
    st.final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, true, c.norm_eps, p);
    return st;
  }

  at::Tensor shared_, lm_head_;
  T5Stack encoder_, decoder_;
};

}  // namespace

std::unique_ptr<Model> build_t5(const Checkpoint& ckpt, const Placement& p) {
  return std::make_unique<T5Model>(ckpt, p);
}

}  // namespace gqa
