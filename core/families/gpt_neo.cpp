// GPT-Neo (GPTNeoForCausalLM): as GPT-2 but separate q/k/v without bias, no attention scaling, and
// layers alternating global and local (sliding window) attention.
#include "core/family.h"

namespace gqa {
namespace {

// attention_types: [[["global","local"], repeat], ...] expands to one entry per layer.
std::vector<std::string> expand_attention_types(const ConfigFields& f, int64_t n_layers) {
  const std::string& path = f.path();
  std::vector<std::string> types;
  if (!f.has("attention_types")) return std::vector<std::string>(size_t(n_layers), "global");
  const nlohmann::json& at = f.at("attention_types");
  if (!at.is_array()) throw InputError(path, "attention_types", "expected [[[types...], repeat], ...]");
  for (const auto& item : at) {
    if (!item.is_array() || item.size() != 2 || !item[0].is_array() || !item[1].is_number_integer())
      throw InputError(path, "attention_types", "expected [[[types...], repeat], ...]");
    for (int64_t r = 0; r < item[1].get<int64_t>() && r < 1 << 16; ++r)
      for (const auto& t : item[0]) {
        if (!t.is_string() || (t != "global" && t != "local"))
          throw InputError(path, "attention_types", "entries must be \"global\" or \"local\"");
        types.push_back(t.get<std::string>());
        if (int64_t(types.size()) > n_layers)  // before a huge repeat allocates
          throw InputError(path, "attention_types",
                           "expands to more than num_layers (" + std::to_string(n_layers) + ") layers");
      }
  }
  if (int64_t(types.size()) != n_layers)
    throw InputError(
        path, "attention_types",
        "expands to " + std::to_string(types.size()) + " layers, num_layers is " + std::to_string(n_layers));
  return types;
}

void parse(const ConfigFields& f, ModelConfig& c) {
  c.vocab_size = f.positive("vocab_size");
  c.d_model = f.positive("hidden_size");
  c.n_layers = f.count("num_layers");
  c.n_heads = f.count("num_heads");
  c.ffn_dim = f.has("intermediate_size") ? f.positive("intermediate_size") : 4 * c.d_model;
  c.max_positions = f.positive("max_position_embeddings");
  c.norm_eps = f.number_or("layer_norm_epsilon", 1e-5);
  c.activation = f.string_or("activation_function", "gelu_new");
  c.window_size = f.integer_or("window_size", 256);
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", true);
  c.attention_bias = c.mlp_bias = true;  // the name table has out_proj's bias only
  c.attention_types = expand_attention_types(f, c.n_layers);
}

nlohmann::json fresh_config(const ModelShape& s, const FreshSizes& z) {
  // Global and local layers alternate (as in GPT-Neo 125M) when a window is given.
  nlohmann::json types = nlohmann::json::array();
  if (s.window_size) {
    if (s.n_layers >= 2) types.push_back({{"global", "local"}, s.n_layers / 2});
    if (s.n_layers % 2) types.push_back({{"global"}, 1});
  } else {
    types.push_back({{"global"}, s.n_layers});
  }
  return {{"vocab_size", s.vocab_size},
          {"hidden_size", s.d_model},
          {"num_layers", s.n_layers},
          {"num_heads", s.n_heads},
          {"max_position_embeddings", s.max_positions},
          {"intermediate_size", z.ffn_dim},
          {"activation_function", z.activation},
          {"attention_types", types},
          {"window_size", s.window_size.value_or(256)},
          {"layer_norm_epsilon", 1e-5},
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};
}

BlockPlan block(const ModelConfig& c, int64_t layer) { return {1.0, local_window(c, layer)}; }

}  // namespace

extern const FamilySpec kGptNeoFamily = {
    /*family=*/Family::GPTNeo,
    /*model_type=*/"gpt_neo",
    /*architecture=*/"GPTNeoForCausalLM",
    /*heads_field=*/"num_heads",
    /*ffn_field=*/"intermediate_size",
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
    /*init_std=*/initializer_range_std,
    /*block=*/block};

}  // namespace gqa
