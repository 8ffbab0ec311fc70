// GPT-Neo: as GPT-2 but separate q/k/v without bias, no attention scaling, and layers alternating
// global and local (sliding window) attention.
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_gpt_neo(const Checkpoint& ckpt, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  auto m = std::make_unique<DecoderLM>(c, p);
  const Stack s = Stack::Decoder;
  m->token_embedding = load(ckpt, s, Role::TokenEmbedding, 0, {c.vocab_size, c.d_model}, p);
  m->position_embedding = load(ckpt, s, Role::PositionEmbedding, 0, {c.max_positions, c.d_model}, p);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    DecoderLayer layer;
    layer.attn_norm = load_norm(ckpt, s, Role::AttnNorm, Role::AttnNormBias, l, false, c.norm_eps, p);
    layer.attn = load_attention(ckpt, AttentionModule::DecoderSelf, l, /*scale=*/1.0, p);
    layer.ffn_norm = load_norm(ckpt, s, Role::FfnNorm, Role::FfnNormBias, l, false, c.norm_eps, p);
    layer.ffn = load_feed_forward(ckpt, s, l, p);
    layer.window = c.attention_types[size_t(l)] == "local" ? c.window_size : 0;
    m->layers.push_back(std::move(layer));
  }
  m->final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, false, c.norm_eps, p);
  m->lm_head = load_lm_head(ckpt, m->token_embedding, p);
  return m;
}

}  // namespace gqa
