#include "core/model/decoder_lm.h"

#include "core/error.h"
#include "core/family.h"

namespace gqa {

Norm load_norm(const Checkpoint& ckpt, Stack s, Role weight, Role bias, int64_t layer, bool rms, double eps,
               const Placement& p) {
  const int64_t d = ckpt.config().d_model;
  Norm n;
  n.rms = rms;
  n.eps = eps;
  n.weight = load(ckpt, s, weight, layer, {d}, p);
  if (!rms) n.bias = load(ckpt, s, bias, layer, {d}, p);
  return n;
}

FeedForward load_feed_forward(const Checkpoint& ckpt, Stack s, int64_t layer, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  FeedForward f;
  f.activation = c.activation;
  f.up.weight = load(ckpt, s, Role::FfnUp, layer, {c.ffn_dim, c.d_model}, p);
  f.down.weight = load(ckpt, s, Role::FfnDown, layer, {c.d_model, c.ffn_dim}, p);
  if (c.gated_ffn) f.gate.weight = load(ckpt, s, Role::FfnGate, layer, {c.ffn_dim, c.d_model}, p);
  if (c.mlp_bias) {
    f.up.bias = load_optional(ckpt, s, Role::FfnUpBias, layer, {c.ffn_dim}, p);
    if (c.gated_ffn) f.gate.bias = load_optional(ckpt, s, Role::FfnGateBias, layer, {c.ffn_dim}, p);
    f.down.bias = load_optional(ckpt, s, Role::FfnDownBias, layer, {c.d_model}, p);
  }
  return f;
}

at::Tensor load_lm_head(const Checkpoint& ckpt, const at::Tensor& token_embedding, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  // A stored lm_head wins unless the config ties it (HF then ignores the stored copy too); T5
  // v1.0 folders store the tied copy and transformers reads it.
  const bool t5 = c.is_encoder_decoder();
  if ((!c.tie_word_embeddings || t5) && has_role(ckpt, Stack::Decoder, Role::LmHead, 0))
    return load(ckpt, Stack::Decoder, Role::LmHead, 0, {c.vocab_size, c.embedding_width()}, p);
  if (!c.tie_word_embeddings && !t5)
    throw InputError(ckpt.dir(), "lm_head.weight", "missing, and config.json says tie_word_embeddings is false");
  return token_embedding;
}

namespace {

// Rotary embeddings of a model: whole heads or their first rotary_dim dims (GPT-NeoX), and only the
// frequency pairs a q/k-reduced model keeps (gqa_rope_pairs), with their original frequencies.
Rope make_rope(const ModelConfig& c, const Placement& p) {
  const int64_t turned = c.rotary_dims();
  for (const auto& l : c.layouts.at(AttentionModule::DecoderSelf))
    if (!l.is_latent() && (c.rotary_dim == 0 ? l.head_dim_qk != turned : l.head_dim_qk < turned))
      throw InputError(c.path, "gqa_qk_head_dim",
                       "q/k head size " + std::to_string(l.head_dim_qk) + " does not match the " +
                           std::to_string(turned / 2) + " rotary pairs (gqa_rope_pairs)");
  Rope rope(c.rope, c.rotary_dim > 0 ? c.rotary_dim : c.head_dim, p);
  if (!c.rope_pairs.empty())
    rope.inv_freq = rope.inv_freq.index_select(
        0, at::tensor(std::vector<int64_t>(c.rope_pairs.begin(), c.rope_pairs.end()), at::kLong).to(p.device));
  return rope;
}

}  // namespace

DecoderLayer load_decoder_layer(const Checkpoint& ckpt, int64_t layer, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  const bool rms = c.spec().norm == NormKind::RMSNorm;
  const BlockPlan plan = c.spec().block(c, layer);
  DecoderLayer l;
  l.attn_norm = load_norm(ckpt, Stack::Decoder, Role::AttnNorm, Role::AttnNormBias, layer, rms, c.norm_eps, p);
  if (c.layout(AttentionModule::DecoderSelf, layer).is_latent())
    l.latent =
        load_latent_attention(ckpt, AttentionModule::DecoderSelf, layer, plan.scale,
                              c.spec().positions == Positions::Rotary ? make_rope(c, p).inv_freq : at::Tensor(), p);
  else
    l.attn = load_attention(ckpt, AttentionModule::DecoderSelf, layer, plan.scale, p);
  l.ffn_norm = load_norm(ckpt, Stack::Decoder, Role::FfnNorm, Role::FfnNormBias, layer, rms, c.norm_eps, p);
  l.ffn = load_feed_forward(ckpt, Stack::Decoder, layer, p);
  l.window = plan.window;
  return l;
}

std::unique_ptr<Model> build_decoder_lm(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  const ModelConfig& c = ckpt.config();
  const FamilySpec& spec = c.spec();
  const Stack s = Stack::Decoder;
  const bool rms = spec.norm == NormKind::RMSNorm;
  const int64_t e = c.embedding_width();
  auto m = std::make_unique<DecoderLM>(c, p);
  m->token_embedding = load(ckpt, s, Role::TokenEmbedding, 0, {c.vocab_size, e}, p);
  if (e != c.d_model) {
    m->project_in = load(ckpt, s, Role::EmbedProjIn, 0, {c.d_model, e}, p);
    m->project_out = load(ckpt, s, Role::EmbedProjOut, 0, {e, c.d_model}, p);
  }
  if (spec.positions == Positions::Learned)
    m->position_embedding =
        load(ckpt, s, Role::PositionEmbedding, 0, {c.max_positions + c.position_offset, c.d_model}, p);
  if (spec.positions == Positions::Rotary) m->rope.emplace(make_rope(c, p));
  if (c.final_norm) m->final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, rms, c.norm_eps, p);
  m->lm_head = load_lm_head(ckpt, m->token_embedding, p);
  if (blocks) m->load_all_layers(ckpt);
  return m;
}

void DecoderLM::load_all_layers(const Checkpoint& ckpt) {
  for (int64_t l = 0; l < config_.n_layers; ++l) layers.push_back(load_decoder_layer(ckpt, l, placement_));
}

struct DecoderLM::Pass {
  at::Tensor x, mask, key_valid, global_mask, local_mask, positions;
  std::pair<at::Tensor, at::Tensor> cos_sin;
  int64_t start = 0, T = 0;
  KVCache* cache = nullptr;
};

DecoderLM::Pass DecoderLM::begin(const at::Tensor& ids, const at::Tensor& mask_in, KVCache* cache,
                                 const at::Tensor& positions_in) const {
  Pass p;
  p.T = ids.size(1);
  p.cache = cache;
  p.mask = mask_in.defined() ? mask_in : at::ones_like(ids);
  p.start = cache ? cache->length() : 0;
  at::Tensor positions;
  if (cache) {
    positions = cache->begin_step(p.mask);
  } else {  // as transformers' generate: position = real tokens before this one
    at::Tensor ml = p.mask.to(at::kLong);
    positions = ((ml.cumsum(1) - 1).clamp_min(0)) * ml;
  }
  if (positions_in.defined()) positions = positions_in;
  if (config_.max_positions > 0 && positions.numel() > 0 && positions.max().item<int64_t>() >= config_.max_positions)
    throw InputError("input", "positions",
                     "position " + std::to_string(positions.max().item<int64_t>()) + " is beyond the model's " +
                         std::to_string(config_.max_positions));
  p.key_valid = cache ? cache->valid_keys(p.T) : p.mask;
  // A packed batch (no padding, no cache) takes SDPA's causal path instead of a mask tensor.
  const bool packed = !mask_in.defined() && !cache;
  if (!packed) p.global_mask = attention_mask(p.key_valid, p.start, p.T, /*causal=*/true);
  p.x = at::embedding(token_embedding, ids);
  if (project_in.defined()) p.x = at::linear(p.x, project_in);
  if (position_embedding.defined())
    p.x = p.x +
          at::embedding(position_embedding, config_.position_offset ? positions + config_.position_offset : positions);
  if (rope) p.cos_sin = rope->cos_sin(positions, p.x.scalar_type());
  p.positions = positions;
  return p;
}

// The attention mask of a block; the local (windowed) one is made on first use and kept in the pass.
const at::Tensor& DecoderLM::layer_mask(Pass& p, const DecoderLayer& layer) const {
  if (layer.window <= 0) return p.global_mask;
  if (!p.local_mask.defined()) p.local_mask = attention_mask(p.key_valid, p.start, p.T, true, layer.window);
  return p.local_mask;
}

void DecoderLM::run_layer(Pass& p, const DecoderLayer& layer, size_t l) const {
  const at::Tensor& m = layer_mask(p, layer);
  auto attention = [&](const at::Tensor& h) {
    observe(AttentionModule::DecoderSelf, int64_t(l), h, p.mask);
    if (layer.latent) return layer.latent->self_attention(h, m, p.positions, p.cache, l);
    return layer.attn.self_attention(h, m, rope ? &*rope : nullptr, p.cos_sin, p.cache, l);
  };
  if (!config_.norm_before) {  // post-norm (OPT-350m)
    p.x = layer.attn_norm(p.x + attention(p.x));
    p.x = layer.ffn_norm(p.x + layer.ffn(p.x));
  } else if (config_.parallel_residual) {  // GPT-NeoX: both branches read the block's input
    p.x = p.x + attention(layer.attn_norm(p.x)) + layer.ffn(layer.ffn_norm(p.x));
  } else {
    p.x = p.x + attention(layer.attn_norm(p.x));
    p.x = p.x + layer.ffn(layer.ffn_norm(p.x));
  }
}

void DecoderLM::run_layer_checkpointed(Pass& p, const DecoderLayer& layer, size_t l) const {
  // The block is a function of the hidden state alone: everything else in the pass (masks, rotary
  // cos/sin) needs no gradient and is captured. The local mask is made here, before the copy, so
  // later layers share it rather than each recompute making its own.
  layer_mask(p, layer);
  Pass rest = p;
  rest.x = at::Tensor();
  // The layer by value: the node outlives this call and must recompute with the forward's weights.
  auto block = [this, rest, layer, l](const std::vector<at::Tensor>& in) {
    Pass q = rest;
    q.x = in[0];
    run_layer(q, layer, l);
    return q.x;
  };
  p.x = run_checkpointed(block, {p.x});
}

at::Tensor DecoderLM::hidden(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache, const Memory* /*memory*/,
                             const at::Tensor& positions) const {
  if (residency() == Residency::Whole) {
    Pass p = begin(ids, mask, cache, positions);
    const bool checkpoint = checkpoint_blocks(cache);
    for (size_t l = 0; l < layers.size(); ++l) {
      if (checkpoint)
        run_layer_checkpointed(p, layers[l], l);
      else
        run_layer(p, layers[l], l);
    }
    if (cache) cache->end_step(p.T);
    return final_norm.weight.defined() ? final_norm(p.x) : p.x;
  }
  if (cache) throw std::logic_error("a OneBlock model runs without a KV cache");
  // Block-major: every micro-batch passes block l before block l + 1 is loaded.
  std::vector<Pass> passes;
  for (const auto& [first, n] : stream_slices(ids.size(0)))
    passes.push_back(begin(ids.narrow(0, first, n), mask.defined() ? mask.narrow(0, first, n) : at::Tensor(), nullptr,
                           positions.defined() ? positions.narrow(0, first, n) : at::Tensor()));
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const DecoderLayer layer = load_decoder_layer(*stream_source_, l, placement_);
    for (Pass& p : passes) run_layer(p, layer, size_t(l));
  }
  std::vector<at::Tensor> out;
  for (Pass& p : passes) out.push_back(final_norm.weight.defined() ? final_norm(p.x) : p.x);
  return at::cat(out, 0);
}

std::vector<AttentionBlock> DecoderLM::attention_blocks() {
  std::vector<AttentionBlock> out;
  for (size_t l = 0; l < layers.size(); ++l)
    if (!layers[l].latent) out.push_back({AttentionModule::DecoderSelf, int64_t(l), &layers[l].attn});
  return out;
}

}  // namespace gqa
