// Qwen1.5 / Qwen2 (Qwen2ForCausalLM): Llama's block (rotary, RMSNorm, SwiGLU, num_key_value_heads)
// with q/k/v biases and no o bias, and optional sliding-window attention on the layers from
// max_window_layers on (layer_types in transformers 5 configs).
#include "core/family.h"

namespace gqa {
namespace {

// Per layer "global" or "local" (c.attention_types, as GPT-Neo's), windowed by c.window_size.
void parse_layer_types(const ConfigFields& f, ModelConfig& c) {
  const bool sliding = f.boolean_or("use_sliding_window", false) && f.has("sliding_window");
  c.window_size = sliding ? f.positive("sliding_window") : 0;
  c.attention_types.assign(size_t(c.n_layers), "global");
  if (!sliding) return;
  if (f.has("layer_types")) {
    const nlohmann::json& types = f.at("layer_types");
    if (!types.is_array() || int64_t(types.size()) != c.n_layers)
      throw InputError(f.path(), "layer_types", "expected one entry per layer (" + std::to_string(c.n_layers) + ")");
    for (size_t l = 0; l < types.size(); ++l) {
      if (types[l] != "full_attention" && types[l] != "sliding_attention")
        throw InputError(f.path(), "layer_types", "entries must be \"full_attention\" or \"sliding_attention\"");
      if (types[l] == "sliding_attention") c.attention_types[l] = "local";
    }
    return;
  }
  const int64_t first = f.integer_or("max_window_layers", c.n_layers);
  for (int64_t l = std::max<int64_t>(0, first); l < c.n_layers; ++l) c.attention_types[size_t(l)] = "local";
}

void parse(const ConfigFields& f, ModelConfig& c) {
  parse_llama_block(f, c);
  c.attention_bias = true;  // q/k/v only: the name table has no o bias
  parse_layer_types(f, c);
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  nlohmann::json j = fresh_llama_block(s, z);
  j["use_sliding_window"] = false;
  return j;
}

BlockPlan block(const ModelConfig& c, int64_t layer) {
  return {scaled_by_head_dim(c, layer).scale, local_window(c, layer)};
}

}  // namespace

extern const FamilySpec kQwen2Family = {
    /*family=*/Family::Qwen2,
    /*model_type=*/"qwen2",
    /*architecture=*/"Qwen2ForCausalLM",
    /*heads_field=*/"num_attention_heads",
    /*ffn_field=*/"intermediate_size",
    /*norm=*/NormKind::RMSNorm,
    /*positions=*/Positions::Rotary,
    /*feed_forward=*/FeedForwardKind::Gated,
    /*encoder_decoder=*/false,
    /*kv_heads_field=*/true,
    /*free_head_dim=*/true,
    /*zero_padding_row=*/true,
    /*default_activation=*/"silu",
    /*parse=*/parse,
    /*fresh_config=*/fresh_config,
    /*init_std=*/initializer_range_std,
    /*block=*/block};

}  // namespace gqa
