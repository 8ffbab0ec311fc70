// Llama (LlamaForCausalLM): rotary positions, RMSNorm, SwiGLU, grouped KV heads native
// (num_key_value_heads), optional attention and MLP biases.
#include "core/family.h"

namespace gqa {
namespace {

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
  c.attention_bias = f.boolean_or("attention_bias", false);
  c.mlp_bias = f.boolean_or("mlp_bias", false);
  c.rope = parse_rope(f);
  if (f.integer_or("pretraining_tp", 1) != 1) throw InputError(f.path(), "pretraining_tp", "only 1 is supported");
  if (f.has("head_dim")) c.head_dim = f.positive("head_dim");
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  // Tied embeddings: small models spend most of their parameters there.
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
          {"attention_bias", false},
          {"mlp_bias", false},
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};
}

}  // namespace

extern const FamilySpec kLlamaFamily = {Family::Llama,
                                        "llama",
                                        "LlamaForCausalLM",
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
                                        scaled_by_head_dim};

}  // namespace gqa
