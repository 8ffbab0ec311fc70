// T5 (T5ForConditionalGeneration, v1.0 and v1.1/flan): encoder-decoder, RMS LayerNorm without
// bias, unscaled attention with a learned relative position bias, ReLU or gated-GELU feed-forward,
// and (v1.0) a d_model^-0.5 rescale before the tied lm_head. Built by core/model/t5.cpp.
#include <cmath>

#include "core/family.h"

namespace gqa {
namespace {

void parse(const ConfigFields& f, ModelConfig& c) {
  c.vocab_size = f.positive("vocab_size");
  c.d_model = f.positive("d_model");
  c.n_encoder_layers = f.count("num_layers");
  c.n_layers = f.has("num_decoder_layers") ? f.count("num_decoder_layers") : c.n_encoder_layers;
  c.n_heads = f.count("num_heads");
  c.head_dim = f.positive("d_kv");
  c.ffn_dim = f.positive("d_ff");
  c.norm_eps = f.number_or("layer_norm_epsilon", 1e-6);
  std::string ff = f.string_or("feed_forward_proj", "relu");
  c.gated_ffn = ff.rfind("gated-", 0) == 0;
  c.activation = c.gated_ffn ? ff.substr(6) : ff;
  if (ff == "gated-gelu") c.activation = "gelu_new";  // as transformers does, for old configs
  c.relative_buckets = f.positive("relative_attention_num_buckets");
  c.relative_max_distance = f.positive("relative_attention_max_distance");
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", true);
  // transformers 5 stores the v1.0 "scale before the tied lm_head" rule explicitly.
  c.scale_decoder_outputs = f.boolean_or("scale_decoder_outputs", c.tie_word_embeddings);
  c.decoder_start_token_id = f.optional_id("decoder_start_token_id");
  if (!c.decoder_start_token_id) c.decoder_start_token_id = f.optional_id("pad_token_id");
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  const int64_t pad = s.pad_token_id.value_or(0);  // T5's convention; also the decoder's start token
  nlohmann::json j = {{"is_encoder_decoder", true},
                      {"vocab_size", s.vocab_size},
                      {"d_model", s.d_model},
                      {"d_kv", z.head_dim},
                      {"d_ff", z.ffn_dim},
                      {"num_heads", s.n_heads},
                      {"num_layers", s.n_encoder_layers > 0 ? s.n_encoder_layers : s.n_layers},
                      {"num_decoder_layers", s.n_layers},
                      {"feed_forward_proj", z.activation},
                      {"relative_attention_num_buckets", 32},
                      {"relative_attention_max_distance", 128},
                      {"layer_norm_epsilon", 1e-6},
                      {"initializer_factor", 1.0},
                      {"tie_word_embeddings", true},
                      {"scale_decoder_outputs", true},
                      {"decoder_start_token_id", pad}};
  j["pad_token_id"] = pad;
  return j;
}

double init_std(const ModelConfig& c, Role r, const AttentionLayout* l) {
  // T5PreTrainedModel._init_weights with initializer_factor 1. Its q std folds in the softmax
  // scale T5 omits, (d_model * d_kv)^-0.5; o's is its fan-in^-0.5. With KQV heads the stored
  // q/k and v head sizes take d_kv's place, which keeps both meanings (and equals HF for MHA).
  const double d = double(c.d_model);
  switch (r) {
    case Role::TokenEmbedding:
    case Role::LmHead: return 1.0;
    case Role::AttnQ:
    case Role::CrossQ: return 1.0 / std::sqrt(d * l->head_dim_qk);
    case Role::AttnO:
    case Role::CrossO: return 1.0 / std::sqrt(double(l->n_q) * l->head_dim_v);
    case Role::FfnDown: return 1.0 / std::sqrt(double(c.ffn_dim));
    default: return 1.0 / std::sqrt(d);  // k, v, wi (wi_0, wi_1), relative position bias
  }
}

BlockPlan block(const ModelConfig&, int64_t) { return {1.0, 0}; }  // T5 folds the scale into q

}  // namespace

extern const FamilySpec kT5Family = {
    /*family=*/Family::T5,
    /*model_type=*/"t5",
    /*architecture=*/"T5ForConditionalGeneration",
    /*heads_field=*/"num_heads",
    /*ffn_field=*/"d_ff",
    /*norm=*/NormKind::RMSNorm,
    /*positions=*/Positions::Relative,
    /*feed_forward=*/FeedForwardKind::ByActivation,
    /*encoder_decoder=*/true,
    /*kv_heads_field=*/false,
    /*free_head_dim=*/true,
    /*zero_padding_row=*/false,
    /*default_activation=*/"relu",
    /*parse=*/parse,
    /*fresh_config=*/fresh_config,
    /*init_std=*/init_std,
    /*block=*/block};

}  // namespace gqa
