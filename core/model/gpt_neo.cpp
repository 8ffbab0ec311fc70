// GPT-Neo: as GPT-2 but separate q/k/v without bias, no attention scaling, and layers alternating
// global and local (sliding window) attention.
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_gpt_neo(const Checkpoint& ckpt, const Placement& p) {
  const ModelConfig& c = ckpt.config();
  auto m = load_decoder_shell(ckpt, /*learned_positions=*/true, /*rms=*/false, p);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    DecoderLayer layer = load_decoder_layer(ckpt, l, /*scale=*/1.0, false, p);
    layer.window = c.attention_types[size_t(l)] == "local" ? c.window_size : 0;
    m->layers.push_back(std::move(layer));
  }
  return m;
}

}  // namespace gqa
