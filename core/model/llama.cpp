// Llama: rotary positions, RMSNorm, SwiGLU, grouped KV heads native (num_key_value_heads).
#include <cmath>

#include "core/error.h"
#include "core/model/decoder_lm.h"

namespace gqa {

std::unique_ptr<Model> build_llama(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  const ModelConfig& c = ckpt.config();
  auto m = load_decoder_shell(ckpt, /*learned_positions=*/false, /*rms=*/true, p);
  // Rotary frequencies pair up the dims of the original head size; a q/k-reduced model keeps a
  // subset of the pairs (gqa_rope_pairs) with their original frequencies.
  const int64_t rotary_dim = c.rope_pairs.empty() ? c.head_dim : 2 * int64_t(c.rope_pairs.size());
  for (const auto& l : c.layouts.at(AttentionModule::DecoderSelf))
    if (l.head_dim_qk != rotary_dim)
      throw InputError(c.path, "gqa_qk_head_dim", "q/k head size " + std::to_string(l.head_dim_qk) + " does not match the " +
                                                      std::to_string(rotary_dim / 2) + " rotary pairs (gqa_rope_pairs)");
  m->rope.emplace(c.rope, c.head_dim, p);
  if (!c.rope_pairs.empty())
    m->rope->inv_freq = m->rope->inv_freq.index_select(
        0, at::tensor(std::vector<int64_t>(c.rope_pairs.begin(), c.rope_pairs.end()), at::kLong).to(p.device));
  m->load_layer = [](const Checkpoint& ck, int64_t l, const Placement& pl) {
    return load_decoder_layer(ck, l, 1.0 / std::sqrt(double(ck.config().head_dim)), true, pl);
  };
  if (blocks) m->load_all_layers(ckpt);
  return m;
}

}  // namespace gqa
