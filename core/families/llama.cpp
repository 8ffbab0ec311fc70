// Llama (LlamaForCausalLM): rotary positions, RMSNorm, SwiGLU, grouped KV heads native
// (num_key_value_heads), optional attention and MLP biases.
#include "core/family.h"

namespace gqa {
namespace {

void parse(const ConfigFields& f, ModelConfig& c) {
  parse_llama_block(f, c);
  c.attention_bias = f.boolean_or("attention_bias", false);
  c.mlp_bias = f.boolean_or("mlp_bias", false);
  if (f.integer_or("pretraining_tp", 1) != 1) throw InputError(f.path(), "pretraining_tp", "only 1 is supported");
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  nlohmann::json j = fresh_llama_block(s, z);
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  return j;
}

}  // namespace

extern const FamilySpec kLlamaFamily = {
    /*family=*/Family::Llama,
    /*model_type=*/"llama",
    /*architecture=*/"LlamaForCausalLM",
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
    /*block=*/scaled_by_head_dim};

}  // namespace gqa
