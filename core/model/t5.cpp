// T5 (v1.0 and v1.1/flan): encoder-decoder, RMS LayerNorm without bias, unscaled attention with a
// learned relative position bias shared by all layers of a stack, cross-attention, ReLU or
// gated-GELU feed-forward, and (v1.0) a d_model^-0.5 rescale before the tied lm_head.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/model/attention.h"
#include "core/model/decoder_lm.h"
#include "core/model/latent_attention.h"
#include "core/model/model.h"

namespace gqa {
namespace {

struct T5Layer {
  Norm self_norm, cross_norm, ffn_norm;
  Attention self, cross;                                     // unused where the block is latent
  std::optional<LatentAttention> self_latent, cross_latent;  // latent (MLA) blocks: gqa_latent
  FeedForward ffn;

  at::Tensor self_attention(const at::Tensor& h, const at::Tensor& bias, KVCache* cache, size_t l) const {
    return self_latent ? self_latent->self_attention(h, bias, at::Tensor(), cache, l)
                       : self.self_attention(h, bias, nullptr, {}, cache, l);
  }
  // The memory's K/V, or its latent twice (K and V of a latent block are the same entries).
  std::pair<at::Tensor, at::Tensor> project_memory(const at::Tensor& memory) const {
    if (!cross_latent) return cross.project_memory(memory);
    const at::Tensor latent = cross_latent->project_memory(memory);
    return {latent, latent};
  }
  at::Tensor cross_attention(const at::Tensor& x, const std::pair<at::Tensor, at::Tensor>& mem,
                             const at::Tensor& mask) const {
    return cross_latent ? cross_latent->cross_attention(x, mem.first, mask)
                        : cross.cross_attention(x, mem.first, mem.second, mask);
  }
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
  T5Model(const Checkpoint& ckpt, const Placement& p, bool blocks) : Model(ckpt.config(), p) {
    const ModelConfig& c = config_;
    shared_ = load(ckpt, Stack::Decoder, Role::TokenEmbedding, 0, {c.vocab_size, c.d_model}, p);
    encoder_ = load_stack(ckpt, Stack::Encoder, blocks);
    decoder_ = load_stack(ckpt, Stack::Decoder, blocks);
    lm_head_ = load_lm_head(ckpt, shared_, p);
  }

  Memory encode(const at::Tensor& ids, const at::Tensor& mask_in) const override {
    at::Tensor mask = mask_in.defined() ? mask_in : at::ones_like(ids);
    if (residency() == Residency::Whole) {
      EncoderPass p = begin_encoder(ids, mask);
      const bool checkpoint = checkpoint_blocks(nullptr);
      for (size_t l = 0; l < encoder_.layers.size(); ++l) {
        if (checkpoint)
          run_encoder_layer_checkpointed(p, encoder_.layers[l], l);
        else
          run_encoder_layer(p, encoder_.layers[l], l);
      }
      return {encoder_.final_norm(p.x), mask};
    }
    std::vector<EncoderPass> passes;
    for (const auto& [first, n] : stream_slices(ids.size(0)))
      passes.push_back(begin_encoder(ids.narrow(0, first, n), mask.narrow(0, first, n)));
    for (int64_t l = 0; l < config_.n_encoder_layers; ++l) {
      const T5Layer layer = load_layer(*stream_source_, Stack::Encoder, l);
      for (EncoderPass& p : passes) run_encoder_layer(p, layer, size_t(l));
    }
    std::vector<at::Tensor> out;
    for (EncoderPass& p : passes) out.push_back(encoder_.final_norm(p.x));
    return {at::cat(out, 0), mask};
  }

  at::Tensor hidden(const at::Tensor& ids, const at::Tensor& mask_in, KVCache* cache, const Memory* memory,
                    const at::Tensor& /*positions: T5 has none*/) const override {
    if (!memory) throw InputError("t5", "memory", "decoder called without encoder output");
    at::Tensor mask = mask_in.defined() ? mask_in : at::ones_like(ids);
    if (residency() == Residency::Whole) {
      DecoderPass p = begin_decoder(ids, mask, cache, *memory);
      if (cache && cache->cross.empty())  // encoder K/V computed once per batch, reused every step
        for (const T5Layer& layer : decoder_.layers) cache->cross.push_back(layer.project_memory(memory->hidden));
      const bool checkpoint = checkpoint_blocks(cache);
      for (size_t l = 0; l < decoder_.layers.size(); ++l) {
        if (checkpoint)
          run_decoder_layer_checkpointed(p, decoder_.layers[l], l);
        else
          run_decoder_layer(p, decoder_.layers[l], l);
      }
      if (cache) cache->end_step(p.T);
      return finish_decoder(p.x);
    }
    if (cache) throw std::logic_error("a OneBlock model runs without a KV cache");
    // Each pass points at its slice of the memory: the slices are all made before any pass.
    const auto slices = stream_slices(ids.size(0));
    std::vector<Memory> memories;
    for (const auto& [first, n] : slices)
      memories.push_back({memory->hidden.narrow(0, first, n), memory->mask.narrow(0, first, n)});
    std::vector<DecoderPass> passes;
    for (size_t b = 0; b < slices.size(); ++b)
      passes.push_back(begin_decoder(ids.narrow(0, slices[b].first, slices[b].second),
                                     mask.narrow(0, slices[b].first, slices[b].second), nullptr, memories[b]));
    for (int64_t l = 0; l < config_.n_layers; ++l) {
      const T5Layer layer = load_layer(*stream_source_, Stack::Decoder, l);
      for (DecoderPass& p : passes) run_decoder_layer(p, layer, size_t(l));
    }
    std::vector<at::Tensor> out;
    for (DecoderPass& p : passes) out.push_back(finish_decoder(p.x));
    return at::cat(out, 0);
  }

  at::Tensor logits(const at::Tensor& h) const override { return at::linear(h, lm_head_); }

 private:
  struct EncoderPass {
    at::Tensor x, mask, bias;
  };
  struct DecoderPass {
    at::Tensor x, mask, self_bias, cross_mask;
    const Memory* memory = nullptr;
    KVCache* cache = nullptr;
    int64_t T = 0;
  };

  EncoderPass begin_encoder(const at::Tensor& ids, const at::Tensor& mask) const {
    const int64_t T = ids.size(1);
    return {at::embedding(shared_, ids), mask,
            position_bias(encoder_, config_, true, 0, T, attention_mask(mask, 0, T, /*causal=*/false))};
  }

  void run_encoder_layer(EncoderPass& p, const T5Layer& layer, size_t l) const {
    const at::Tensor h = layer.self_norm(p.x);
    observe(AttentionModule::EncoderSelf, int64_t(l), h, p.mask);
    p.x = p.x + layer.self_attention(h, p.bias, nullptr, 0);
    p.x = p.x + layer.ffn(layer.ffn_norm(p.x));
  }

  // run_encoder_layer with its activations recomputed in backward. The position bias comes from a
  // trained table, so it is a block input (see run_checkpointed); the mask is captured. The layer is
  // captured by value: the recompute must use the forward's weights.
  void run_encoder_layer_checkpointed(EncoderPass& p, const T5Layer& layer, size_t l) const {
    auto block = [this, mask = p.mask, layer, l](const std::vector<at::Tensor>& in) {
      EncoderPass q{in[0], mask, in[1]};
      run_encoder_layer(q, layer, l);
      return q.x;
    };
    p.x = run_checkpointed(block, {p.x, p.bias});
  }

  DecoderPass begin_decoder(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache, const Memory& memory) const {
    DecoderPass p;
    p.T = ids.size(1);
    p.mask = mask;
    p.memory = &memory;
    p.cache = cache;
    const int64_t start = cache ? cache->length() : 0;
    if (cache) cache->begin_step(mask);
    at::Tensor key_valid = cache ? cache->valid_keys(p.T) : mask;
    p.x = at::embedding(shared_, ids);
    p.self_bias = position_bias(decoder_, config_, false, start, p.T, attention_mask(key_valid, start, p.T, true));
    p.cross_mask = additive(memory.mask.to(at::kBool).unsqueeze(1).unsqueeze(1), p.x.scalar_type());
    return p;
  }

  void run_decoder_layer(DecoderPass& p, const T5Layer& layer, size_t l) const {
    const at::Tensor h = layer.self_norm(p.x);
    observe(AttentionModule::DecoderSelf, int64_t(l), h, p.mask);
    observe(AttentionModule::DecoderCross, int64_t(l), p.memory->hidden, p.memory->mask);
    p.x = p.x + layer.self_attention(h, p.self_bias, p.cache, l);
    auto mem = p.cache ? p.cache->cross[l] : layer.project_memory(p.memory->hidden);
    p.x = p.x + layer.cross_attention(layer.cross_norm(p.x), mem, p.cross_mask);
    p.x = p.x + layer.ffn(layer.ffn_norm(p.x));
  }

  // run_decoder_layer with its activations recomputed in backward. Inputs: the hidden state, the
  // encoder output (trained through the encoder) and the self-attention position bias (from a
  // trained table); the masks need no gradient and are captured. The Memory the pass points at may
  // be gone by backward, so the block gets a Memory of its own.
  void run_decoder_layer_checkpointed(DecoderPass& p, const T5Layer& layer, size_t l) const {
    DecoderPass rest = p;
    rest.x = rest.self_bias = at::Tensor();
    rest.memory = nullptr;
    auto block = [this, rest, memory_mask = p.memory->mask, layer, l](const std::vector<at::Tensor>& in) {
      const Memory memory{in[1], memory_mask};
      DecoderPass q = rest;
      q.x = in[0];
      q.memory = &memory;
      q.self_bias = in[2];
      run_decoder_layer(q, layer, l);
      return q.x;
    };
    p.x = run_checkpointed(block, {p.x, p.memory->hidden, p.self_bias});
  }

  at::Tensor finish_decoder(const at::Tensor& x_in) const {
    at::Tensor x = decoder_.final_norm(x_in);
    if (config_.scale_decoder_outputs) x = x * std::pow(double(config_.d_model), -0.5);
    return x;
  }

  std::vector<AttentionBlock> attention_blocks() override {
    std::vector<AttentionBlock> out;
    for (size_t l = 0; l < encoder_.layers.size(); ++l)
      if (!encoder_.layers[l].self_latent)
        out.push_back({AttentionModule::EncoderSelf, int64_t(l), &encoder_.layers[l].self});
    for (size_t l = 0; l < decoder_.layers.size(); ++l) {
      if (!decoder_.layers[l].self_latent)
        out.push_back({AttentionModule::DecoderSelf, int64_t(l), &decoder_.layers[l].self});
      if (!decoder_.layers[l].cross_latent)
        out.push_back({AttentionModule::DecoderCross, int64_t(l), &decoder_.layers[l].cross});
    }
    return out;
  }

  T5Layer load_layer(const Checkpoint& ckpt, Stack s, int64_t l) const {
    const ModelConfig& c = config_;
    const Placement& p = placement_;
    const bool enc = s == Stack::Encoder;
    T5Layer layer;
    layer.self_norm = load_norm(ckpt, s, Role::AttnNorm, Role::AttnNormBias, l, true, c.norm_eps, p);
    // T5 attention is unscaled (scale 1) and has no rotary embeddings.
    const AttentionModule self = enc ? AttentionModule::EncoderSelf : AttentionModule::DecoderSelf;
    if (c.layout(self, l).is_latent())
      layer.self_latent = load_latent_attention(ckpt, self, l, 1.0, at::Tensor(), p);
    else
      layer.self = load_attention(ckpt, self, l, 1.0, p);
    if (!enc) {
      layer.cross_norm = load_norm(ckpt, s, Role::CrossNorm, Role::CrossNorm, l, true, c.norm_eps, p);
      if (c.layout(AttentionModule::DecoderCross, l).is_latent())
        layer.cross_latent = load_latent_attention(ckpt, AttentionModule::DecoderCross, l, 1.0, at::Tensor(), p);
      else
        layer.cross = load_attention(ckpt, AttentionModule::DecoderCross, l, 1.0, p);
    }
    layer.ffn_norm = load_norm(ckpt, s, Role::FfnNorm, Role::FfnNormBias, l, true, c.norm_eps, p);
    layer.ffn = load_feed_forward(ckpt, s, l, p);
    return layer;
  }

  // The relative position bias and final norm always; the blocks too when `blocks`.
  T5Stack load_stack(const Checkpoint& ckpt, Stack s, bool blocks) const {
    const ModelConfig& c = config_;
    T5Stack st;
    st.relative_bias = load(ckpt, s, Role::AttnRelativeBias, 0, {c.relative_buckets, c.n_heads}, placement_);
    if (blocks)
      for (int64_t l = 0; l < (s == Stack::Encoder ? c.n_encoder_layers : c.n_layers); ++l)
        st.layers.push_back(load_layer(ckpt, s, l));
    st.final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, true, c.norm_eps, placement_);
    return st;
  }

  at::Tensor shared_, lm_head_;
  T5Stack encoder_, decoder_;
};

}  // namespace

std::unique_ptr<Model> build_t5(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  return std::make_unique<T5Model>(ckpt, p, blocks);
}

}  // namespace gqa
