// GPT-NeoX / Pythia (GPTNeoXForCausalLM): LayerNorm, partial rotary embeddings (the first
// rotary_pct of each head's dims turn, the rest pass through), parallel residual
// (x + attn(ln1 x) + mlp(ln2 x)) unless use_parallel_residual is false, GELU MLP, biases, and
// q/k/v fused in query_key_value, interleaved per head (core/arch's fused_qkv_runs).
// transformers has no KV-head field for it: grouped folders load in gqa, `--export expanded`
// writes what transformers loads.
#include <cmath>

#include "core/family.h"

namespace gqa {
namespace {

constexpr double kPythiaRotaryFraction = 0.25;  // transformers' default rotary_pct

void parse(const ConfigFields& f, ModelConfig& c) {
  parse_standard_sizes(f, c, "intermediate_size");
  c.norm_eps = f.number_or("layer_norm_eps", 1e-5);
  c.activation = f.string_or("hidden_act", "gelu");
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.parallel_residual = f.boolean_or("use_parallel_residual", true);
  c.attention_bias = f.boolean_or("attention_bias", true);
  c.mlp_bias = true;
  // transformers 5 keeps theta and the rotary fraction in rope_parameters; 4.x configs (every
  // Pythia on the hub) state rotary_emb_base and rotary_pct at the top level.
  c.rope = parse_rope(f);
  if (!f.has("rope_parameters") && !f.has("rope_scaling")) c.rope.theta = f.number_or("rotary_emb_base", c.rope.theta);
  double fraction = f.number_or("rotary_pct", kPythiaRotaryFraction);
  if (f.has("rope_parameters") && f.at("rope_parameters").is_object())
    fraction = ConfigFields(f.at("rope_parameters"), f.path(), "rope_parameters.")
                   .number_or("partial_rotary_factor", fraction);
  if (!(fraction > 0 && fraction <= 1))
    throw InputError(f.path(), "rotary_pct",
                     "expected a fraction of the head in (0, 1], got " + std::to_string(fraction));
  if (c.d_model % c.n_heads == 0) {
    c.head_dim = c.d_model / c.n_heads;
    c.rotary_dim = int64_t(double(c.head_dim) * fraction);  // int(), as transformers truncates
    if (c.rotary_dim == 0)
      throw InputError(f.path(), "rotary_pct",
                       "leaves no rotary dims of a " + std::to_string(c.head_dim) + "-dim head");
  }
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  return {{"vocab_size", s.vocab_size},
          {"hidden_size", s.d_model},
          {"num_hidden_layers", s.n_layers},
          {"num_attention_heads", s.n_heads},
          {"intermediate_size", z.ffn_dim},
          {"hidden_act", z.activation},
          {"max_position_embeddings", s.max_positions},
          {"layer_norm_eps", 1e-5},
          {"use_parallel_residual", true},
          {"attention_bias", true},
          {"rope_parameters",
           {{"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", kPythiaRotaryFraction}}},
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};  // as the other fresh configs
}

}  // namespace

extern const FamilySpec kGptNeoXFamily = {
    /*family=*/Family::GPTNeoX,
    /*model_type=*/"gpt_neox",
    /*architecture=*/"GPTNeoXForCausalLM",
    /*heads_field=*/"num_attention_heads",
    /*ffn_field=*/"intermediate_size",
    /*norm=*/NormKind::LayerNorm,
    /*positions=*/Positions::Rotary,
    /*feed_forward=*/FeedForwardKind::Plain,
    /*encoder_decoder=*/false,
    /*kv_heads_field=*/false,
    /*free_head_dim=*/false,
    /*zero_padding_row=*/false,
    /*default_activation=*/"gelu",
    /*parse=*/parse,
    /*fresh_config=*/fresh_config,
    /*init_std=*/initializer_range_std,
    /*block=*/scaled_by_head_dim};

}  // namespace gqa
