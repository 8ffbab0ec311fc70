// GPT-2: learned positions, LayerNorm, fused Conv1D q/k/v (cut by core/arch), GELU MLP, softmax
// scale 1/sqrt(head_dim) (optionally also divided by the layer number).
#include <cmath>

#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_gpt2(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  auto m = load_decoder_shell(ckpt, /*learned_positions=*/true, /*rms=*/false, p);
  m->load_layer = [](const Checkpoint& ck, int64_t l, const Placement& pl) {
    const ModelConfig& c = ck.config();
    double scale = c.scale_attn_weights ? 1.0 / std::sqrt(double(c.head_dim)) : 1.0;
    if (c.scale_attn_by_inverse_layer_idx) scale /= double(l + 1);
    return load_decoder_layer(ck, l, scale, false, pl);
  };
  if (blocks) m->load_all_layers(ckpt);
  return m;
}

}  // namespace gqa
