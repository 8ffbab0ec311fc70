// A model family is one file: core/families/<family>.cpp fills a FamilySpec with the family's
// traits, its config.json fields, the config and init rules of a fresh model (`gqa train`) and how
// each block of it is built. core/families/registry.cpp lists the specs, core/arch.cpp holds their
// tensor names, and the shared runtime (core/model/decoder_lm.cpp, t5.cpp) reads the traits; no
// code outside core/ asks which family a model is. As llama.cpp's src/models/<arch>.cpp on
// llama-arch.cpp, but declarative: the runtime's mechanisms (pre/post-norm, parallel residual,
// partial rotary, sliding windows, embedding projections) are shared, the family picks them.
// Torch-free, so the fuzzers and `gqa train`'s initialiser link it without LibTorch.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/arch.h"
#include "core/config.h"
#include "core/config_fields.h"
#include "core/model_shape.h"

namespace gqa {

enum class NormKind { LayerNorm, RMSNorm };
enum class Positions { Learned, Rotary, Relative };
// Plain: act(up(x)); Gated: SwiGLU, act(gate(x)) * up(x) (Llama, Qwen2); ByActivation: gated when the
// activation is spelled "gated-<act>" (T5's feed_forward_proj).
enum class FeedForwardKind { Plain, Gated, ByActivation };

// What a block of the runtime model is, beyond its weights.
struct BlockPlan {
  double scale = 1.0;  // softmax scale
  int64_t window = 0;  // > 0: sliding-window attention over the last `window` slots
};

// The sizes a fresh model's config.json states, resolved from a ModelShape's defaults.
struct FreshSizes {
  int64_t head_dim, ffn_dim;
  std::string activation;
};

struct FamilySpec {
  Family family;
  const char* model_type;    // config.json's model_type
  const char* architecture;  // the transformers class a fresh config.json names
  const char* heads_field;   // config.json's query-head count (errors name it)
  const char* ffn_field;     // config.json's feed-forward width
  NormKind norm;
  Positions positions;
  FeedForwardKind feed_forward;
  bool encoder_decoder;
  // transformers reads num_key_value_heads for this family, so a grouped folder with even
  // contiguous groups loads there as it is; others need `gqa convert --export expanded`.
  bool kv_heads_field;
  // head_dim may differ from d_model / heads (Llama's head_dim, T5's d_kv).
  bool free_head_dim;
  // nn.Embedding(padding_idx = pad_token_id): a fresh model's pad row starts at zero.
  bool zero_padding_row;
  const char* default_activation;
  // Fills the family's fields of `c` (sizes, activation, positions, wiring) from config.json;
  // sets c.head_dim only when the family states it (otherwise d_model / heads).
  void (*parse)(const ConfigFields& f, ModelConfig& c);
  // The config.json of a fresh model, as transformers writes it for the family, without the
  // grouped-attention fields (core/init_model.cpp adds those).
  nlohmann::json (*fresh_config)(const ModelShape& s, const FreshSizes& sizes);
  // The standard deviation transformers' _init_weights draws a weight of this role from.
  double (*init_std)(const ModelConfig& c, Role r, const AttentionLayout* layout);
  // Scale and window of decoder block `layer`.
  BlockPlan (*block)(const ModelConfig& c, int64_t layer);
};

const FamilySpec& family_spec(Family f);
// The spec whose model_type is `model_type`, or nullptr.
const FamilySpec* find_family(const std::string& model_type);
// "gpt2, gpt_neo, ..." for error messages.
std::string family_names();

// Shared pieces of the family files.
constexpr double kInitializerRange = 0.02;  // initializer_range of every family but T5
double initializer_range_std(const ModelConfig& c, Role r, const AttentionLayout* layout);
BlockPlan scaled_by_head_dim(const ModelConfig& c, int64_t layer);  // 1/sqrt(head_dim), no window
// Window of a layer from c.attention_types ("local" layers see c.window_size slots).
int64_t local_window(const ModelConfig& c, int64_t layer);
// The sizes most transformers configs name alike (vocab_size, hidden_size, num_hidden_layers,
// num_attention_heads, max_position_embeddings) and the family's feed-forward width field.
void parse_standard_sizes(const ConfigFields& f, ModelConfig& c, const char* ffn_field);
// Llama's block as Llama and Qwen2 state it: standard sizes, rms_norm_eps, hidden_act, SwiGLU,
// untied by default, rotary (parse_rope), head_dim; and a fresh config of it.
void parse_llama_block(const ConfigFields& f, ModelConfig& c);
nlohmann::json fresh_llama_block(const ModelShape& s, const FreshSizes& z);
// rope_theta / rope_parameters / rope_scaling of a rotary family.
RopeConfig parse_rope(const ConfigFields& f);

}  // namespace gqa
