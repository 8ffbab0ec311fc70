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
  c.vocab_size = f.positive("vocab_size");
  c.d_model = f.positive("hidden_size");
  c.n_layers = f.count("num_hidden_layers");
  c.n_heads = f.count("num_attention_heads");
  c.ffn_dim = f.positive("intermediate_size");
  c.max_positions = f.positive("max_position_embeddings");
  c.norm_eps = f.number_or("rms_norm_eps", 1e-6);
  c.activation = f.string_or("hidden_act", "silu");
  c.gated_ffn = true;
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.attention_bias = true;  // q/k/v only: the name table has no o bias
  c.rope = parse_rope(f);
  if (f.has("head_dim")) c.head_dim = f.positive("head_dim");
  parse_layer_types(f, c);
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  return {{"vocab_size", s.vocab_size},
          {"hidden_size", s.d_model},
          {"intermediate_size", z.ffn_dim},
          {"num_hidden_layers", s.n_layers},
          {"num_attention_heads", s.n_heads},
          {"head_dim", z.head_dim},
          {"hidden_act", z.activation},
          {"max_position_embeddings", s.max_positions},
          {"rms_norm_eps", 1e-6},
          {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
          {"use_sliding_window", false},
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};
}

BlockPlan block(const ModelConfig& c, int64_t layer) {
  return {scaled_by_head_dim(c, layer).scale, local_window(c, layer)};
}

}  // namespace

extern const FamilySpec kQwen2Family = {Family::Qwen2,
                                        "qwen2",
                                        "Qwen2ForCausalLM",
                                        "num_attention_heads",
                                        "intermediate_size",
                                        NormKind::RMSNorm,
                                        Positions::Rotary,
                                        /*encoder_decoder=*/false,
                                        /*kv_heads_field=*/true,
                                        /*free_head_dim=*/true,
                                        /*zero_padding_row=*/true,
                                        "silu",
                                        parse,
                                        fresh_config,
                                        initializer_range_std,
                                        block};

}  // namespace gqa
