// GPT-2 (GPT2LMHeadModel): learned positions, LayerNorm, fused Conv1D q/k/v (cut by core/arch),
// GELU MLP, biases everywhere, softmax scale 1/sqrt(head_dim), optionally also divided by the
// layer number (scale_attn_by_inverse_layer_idx).
#include <cmath>

#include "core/family.h"

namespace gqa {
namespace {

void parse(const ConfigFields& f, ModelConfig& c) {
  c.vocab_size = f.positive("vocab_size");
  c.d_model = f.positive("n_embd");
  c.n_layers = f.count("n_layer");
  c.n_heads = f.count("n_head");
  c.ffn_dim = f.has("n_inner") ? f.positive("n_inner") : 4 * c.d_model;
  c.max_positions = f.positive("n_positions");
  c.norm_eps = f.number_or("layer_norm_epsilon", 1e-5);
  c.activation = f.string_or("activation_function", "gelu_new");
  c.scale_attn_weights = f.boolean_or("scale_attn_weights", true);
  c.scale_attn_by_inverse_layer_idx = f.boolean_or("scale_attn_by_inverse_layer_idx", false);
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", true);
  c.attention_bias = c.mlp_bias = true;
  if (f.boolean_or("add_cross_attention", false))
    throw InputError(f.path(), "add_cross_attention", "GPT-2 with cross-attention is not supported");
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  return {{"vocab_size", s.vocab_size},
          {"n_embd", s.d_model},
          {"n_layer", s.n_layers},
          {"n_head", s.n_heads},
          {"n_positions", s.max_positions},
          {"n_inner", z.ffn_dim},
          {"activation_function", z.activation},
          {"layer_norm_epsilon", 1e-5},
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};
}

double init_std(const ModelConfig& c, Role r, const AttentionLayout*) {
  // GPT-2's scaled init of the two residual projections: 1/sqrt(2 * n_layer).
  if (r == Role::AttnO || r == Role::FfnDown) return kInitializerRange / std::sqrt(2.0 * double(c.n_layers));
  return kInitializerRange;
}

BlockPlan block(const ModelConfig& c, int64_t layer) {
  double scale = c.scale_attn_weights ? 1.0 / std::sqrt(double(c.head_dim)) : 1.0;
  if (c.scale_attn_by_inverse_layer_idx) scale /= double(layer + 1);
  return {scale, 0};
}

}  // namespace

extern const FamilySpec kGpt2Family = {
    /*family=*/Family::GPT2,
    /*model_type=*/"gpt2",
    /*architecture=*/"GPT2LMHeadModel",
    /*heads_field=*/"n_head",
    /*ffn_field=*/"n_inner",
    /*norm=*/NormKind::LayerNorm,
    /*positions=*/Positions::Learned,
    /*feed_forward=*/FeedForwardKind::Plain,
    /*encoder_decoder=*/false,
    /*kv_heads_field=*/false,
    /*free_head_dim=*/false,
    /*zero_padding_row=*/false,
    /*default_activation=*/"gelu_new",
    /*parse=*/parse,
    /*fresh_config=*/fresh_config,
    /*init_std=*/init_std,
    /*block=*/block};

}  // namespace gqa
