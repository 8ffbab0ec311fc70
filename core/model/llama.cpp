// Llama: rotary positions, RMSNorm, SwiGLU, grouped KV heads native (num_key_value_heads).
#include <cmath>

#include "core/error.h"
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_llama(const Checkpoint& ckpt, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  auto m = load_decoder_shell(ckpt, /*learned_positions=*/false, /*rms=*/true, p);
  // Rotary frequencies pair up the dims of the original head size; a smaller q/k head would need
  // to say which frequency pairs it kept, which no converter writes yet.
  for (const auto& l : c.layouts.at(AttentionModule::DecoderSelf))
    if (l.head_dim_qk != c.head_dim)
      throw InputError(c.path, "gqa_qk_head_dim", "a q/k head size other than head_dim (" + std::to_string(c.head_dim) +
                                                      ") is not supported with rotary embeddings yet");
  m->rope.emplace(c.rope, c.head_dim, p);
  for (int64_t l = 0; l < c.n_layers; ++l)
    m->layers.push_back(load_decoder_layer(ckpt, l, 1.0 / std::sqrt(double(c.head_dim)), true, p));
  return m;
}

}  // namespace gqa
