// GPT-Neo: as GPT-2 but separate q/k/v without bias, no attention scaling, and layers alternating
// global and local (sliding window) attention.
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_gpt_neo(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  auto m = load_decoder_shell(ckpt, /*learned_positions=*/true, /*rms=*/false, p);
  m->load_layer = [](const Checkpoint& ck, int64_t l, const Placement& pl) {
    const ModelConfig& c = ck.config();
    DecoderLayer layer = load_decoder_layer(ck, l, /*scale=*/1.0, false, pl);
    layer.window = c.attention_types[size_t(l)] == "local" ? c.window_size : 0;
    return layer;
  };
  if (blocks) m->load_all_layers(ckpt);
  return m;
}

}  // namespace gqa
