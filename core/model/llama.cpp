// Llama: rotary positions, RMSNorm, SwiGLU, grouped KV heads native (num_key_value_heads).
#include <cmath>

#include "core/error.h"
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_llama(const Checkpoint& ckpt, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  auto m = std::make_unique<DecoderLM>(c, p);
  const Stack s = Stack::Decoder;
  m->token_embedding = load(ckpt, s, Role::TokenEmbedding, 0, {c.vocab_size, c.d_model}, p);
  // The softmax scale and rotary frequencies belong to the original head size, so a conversion
  // to smaller q/k heads (gqa_qk_head_dim) keeps them and stays a projection of the same model.
  const int64_t head_dim = c.raw.contains("head_dim") && c.raw["head_dim"].is_number_integer()
                               ? c.raw["head_dim"].get<int64_t>()
                               : c.d_model / c.n_heads;
  // One rotary table serves all layers, so their q/k head sizes must agree.
  const int rotary_dim = c.layout(AttentionModule::DecoderSelf, 0).head_dim_qk;
  for (const auto& l : c.layouts.at(AttentionModule::DecoderSelf))
    if (l.head_dim_qk != rotary_dim)
      throw InputError(c.path, "gqa_layers", "layers with different q/k head sizes are not supported with rotary embeddings");
  m->rope.emplace(c.rope, rotary_dim, p);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    DecoderLayer layer;
    layer.attn_norm = load_norm(ckpt, s, Role::AttnNorm, Role::AttnNormBias, l, true, c.norm_eps, p);
    layer.attn = load_attention(ckpt, AttentionModule::DecoderSelf, l, 1.0 / std::sqrt(double(head_dim)), p);
    layer.ffn_norm = load_norm(ckpt, s, Role::FfnNorm, Role::FfnNormBias, l, true, c.norm_eps, p);
    layer.ffn = load_feed_forward(ckpt, s, l, p);
    m->layers.push_back(std::move(layer));
  }
  m->final_norm = load_norm(ckpt, s, Role::FinalNorm, Role::FinalNormBias, 0, true, c.norm_eps, p);
  m->lm_head = load_lm_head(ckpt, m->token_embedding, p);
  return m;
}

}  // namespace gqa
