// GPT-2: learned positions, LayerNorm, fused Conv1D q/k/v (cut by core/arch), GELU MLP.
#include <cmath>

#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_gpt2(const Checkpoint& ckpt, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  auto m = std::make_unique<DecoderLM>(c, p);
  const Stack s = Stack::Decoder;
  m->token_embedding = load(ckpt, s, Role::TokenEmbedding, 0, {c.vocab_size, c.d_model}, p);
  m->position_embedding = load(ckpt, s, Role::PositionEmbedding, 0, {c.max_positions, c.d_model}, p);
  const double head_dim = double(c.d_model / c.n_heads);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    double scale = c.scale_attn_weights ? 1.0 / std::sqrt(head_dim) : 1.0;
    if (c.scale_attn_by_inverse_layer_idx) scale /= double(l + 1);
    DecoderLayer layer;
    layer.attn_norm = load_norm(ckpt, s, Role::AttnNorm, Role::AttnNormBias, l, false, c.norm_eps, p);
    layer.attn = load_attention(ckpt, AttentionModule::DecoderSelf, l, scale, p);
    layer.ffn_norm = load_norm(ckpt, s, Role::FfnNorm, Role::FfnNormBias, l, false, c.norm_eps, p);
    layer.ffn = load_feed_forward(ckpt, s, l, p);
    m->layers.push_back(std::move(layer));
  }
  m->final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, false, c.norm_eps, p);
  m->lm_head = load_lm_head(ckpt, m->token_embedding, p);
  return m;
}

}  // namespace gqa
