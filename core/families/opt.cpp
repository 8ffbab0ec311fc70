// OPT (OPTForCausalLM): learned positions read at position + 2 (fairseq's padding offset),
// LayerNorm before the attention and the MLP (do_layer_norm_before) or after the residual sum
// (OPT-350m, which then has no final norm), ReLU MLP, biases (enable_bias), and token embeddings
// narrower than the model (word_embed_proj_dim) through project_in / project_out.
// transformers has no KV-head field for it: grouped folders load in gqa, `--export expanded`
// writes what transformers loads.
#include "core/family.h"

namespace gqa {
namespace {

constexpr int64_t kOptPositionOffset = 2;

void parse(const ConfigFields& f, ModelConfig& c) {
  parse_standard_sizes(f, c, "ffn_dim");
  c.norm_eps = 1e-5;  // nn.LayerNorm's default; OPT states none
  c.activation = f.string_or("activation_function", "relu");
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", true);
  c.attention_bias = c.mlp_bias = f.boolean_or("enable_bias", true);
  c.norm_before = f.boolean_or("do_layer_norm_before", true);
  c.final_norm = c.norm_before && !f.boolean_or("_remove_final_layer_norm", false);
  c.position_offset = kOptPositionOffset;
  if (f.has("word_embed_proj_dim")) {
    const int64_t width = f.positive("word_embed_proj_dim");
    if (width != c.d_model) c.embed_dim = width;
  }
  if (!f.boolean_or("layer_norm_elementwise_affine", true))
    throw InputError(f.path(), "layer_norm_elementwise_affine", "false (LayerNorm without weights) is not supported");
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  return {{"vocab_size", s.vocab_size},
          {"hidden_size", s.d_model},
          {"num_hidden_layers", s.n_layers},
          {"num_attention_heads", s.n_heads},
          {"ffn_dim", z.ffn_dim},
          {"activation_function", z.activation},
          {"max_position_embeddings", s.max_positions},
          {"word_embed_proj_dim", s.d_model},
          {"do_layer_norm_before", true},
          {"enable_bias", true},
          {"layer_norm_elementwise_affine", true},
          {"init_std", kInitializerRange},
          {"tie_word_embeddings", true}};
}

}  // namespace

extern const FamilySpec kOptFamily = {
    /*family=*/Family::OPT,
    /*model_type=*/"opt",
    /*architecture=*/"OPTForCausalLM",
    /*heads_field=*/"num_attention_heads",
    /*ffn_field=*/"ffn_dim",
    /*norm=*/NormKind::LayerNorm,
    /*positions=*/Positions::Learned,
    /*feed_forward=*/FeedForwardKind::Plain,
    /*encoder_decoder=*/false,
    /*kv_heads_field=*/false,
    /*free_head_dim=*/false,
    /*zero_padding_row=*/true,
    /*default_activation=*/"relu",
    /*parse=*/parse,
    /*fresh_config=*/fresh_config,
    /*init_std=*/initializer_range_std,
    /*block=*/scaled_by_head_dim};

}  // namespace gqa
