// Model configuration parsed from a Hugging Face config.json, plus the attention layout of every
// attention block (query heads, KV heads, head -> group map, head dims). The layout is what makes a
// converted folder self-describing: strategies change weights and these fields, nothing else.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gqa {

// Every family's traits and config.json rules live in its own file (core/families/<family>.cpp, see
// core/family.h); this list only names them.
enum class Family { GPT2, GPTNeo, T5, Llama, GPTNeoX, OPT, Qwen2 };
const char* family_name(Family f);  // the HF model_type: "gpt2", "gpt_neo", "t5", "llama", ...
struct FamilySpec;

// Which attention of a model: decoder-only models have only DecoderSelf.
enum class AttentionModule { DecoderSelf, DecoderCross, EncoderSelf };
const char* module_name(AttentionModule m);  // "decoder_self", "decoder_cross", "encoder_self"

struct AttentionLayout {
  int n_q = 0;                // query heads
  int n_kv = 0;               // key/value heads
  std::vector<int> group_of;  // query head h reads KV head group_of[h]; size n_q
  int head_dim_qk = 0;        // query/key vector size per head
  int head_dim_v = 0;         // value vector size per head
  // Latent attention (MLA, convert/latent.*): per token the block caches a latent of
  // latent_rank dims and one rotary key of latent_rope_dims dims, shared by every head (n_kv = 1);
  // head_dim_qk = the dims a head scores without rotation + latent_rope_dims. 0 = not latent.
  int latent_rank = 0;
  int latent_rope_dims = 0;
  std::vector<int> latent_rope_pairs;  // [latent_rope_dims/2]: the source RoPE pair each slot turns at

  static AttentionLayout even(int n_q, int n_kv, int head_dim_qk, int head_dim_v);
  // A latent block: n_heads query heads over one shared entry of rank + rope_dims per token; each
  // head scores nope_dims + rope_dims and reads value_dims.
  static AttentionLayout latent(int n_heads, int nope_dims, int rope_dims, int value_dims, int rank,
                                std::vector<int> rope_pairs = {});
  bool is_mha() const;              // one KV head per query head, identity map
  bool is_contiguous_even() const;  // groups of equal size in head order (SDPA enable_gqa)
  std::vector<int> group_sizes() const;
  bool is_latent() const { return latent_rank > 0; }
  // Cache entries per token: K and V of every KV head, or the latent and its rotary key.
  int64_t cache_dims_per_token() const {
    return is_latent() ? int64_t(latent_rank) + latent_rope_dims : int64_t(n_kv) * (head_dim_qk + head_dim_v);
  }
  std::string describe() const;  // "8q/2kv [4,4] qk64 v64"
};

// Checks a group map against n_q (size) and itself (every KV head used); throws InputError.
void validate_group_map(const std::vector<int>& group_of, int n_q, const std::string& file, const std::string& field);

enum class RopeType { None, Default, Linear, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::None;
  double theta = 10000.0;
  double factor = 1.0;                    // linear, llama3
  double low_freq_factor = 1.0;           // llama3
  double high_freq_factor = 4.0;          // llama3
  int64_t original_max_positions = 8192;  // llama3
};

struct ModelConfig {
  Family family = Family::Llama;
  std::string path;    // the config.json it came from (for error messages)
  nlohmann::json raw;  // the whole file, so writers keep fields we do not interpret

  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;          // decoder layers (T5: decoder stack)
  int64_t n_encoder_layers = 0;  // T5 only
  int64_t n_heads = 0;
  int64_t head_dim = 0;  // the original per-head size (sets the softmax scale and RoPE)
  int64_t ffn_dim = 0;
  int64_t max_positions = 0;  // learned/rotary position limit; 0 = unbounded (T5)
  double norm_eps = 1e-5;
  std::string activation;  // "gelu_new", "silu", "relu", "gelu", ...
  bool gated_ffn = false;  // SwiGLU (Llama), gated-gelu (T5 v1.1)
  bool tie_word_embeddings = true;
  bool attention_bias = false;  // the family's attention biases exist (GPT-2, OPT; Llama's attention_bias)
  bool mlp_bias = false;        // the feed-forward's biases exist
  RopeConfig rope;
  // Rotary dims of the original head (GPT-NeoX's partial rotary: the first rotary_dim dims of each
  // q/k head turn, the rest pass through); 0 = all of head_dim.
  int64_t rotary_dim = 0;
  // Block wiring. Sequential pre-norm is x += attn(norm1(x)); x += ffn(norm2(x)). GPT-NeoX's
  // parallel residual is x += attn(norm1(x)) + ffn(norm2(x)); OPT-350m's post-norm (norm_before
  // false) is x = norm1(x + attn(x)); x = norm2(x + ffn(x)), with no final norm.
  bool parallel_residual = false;
  bool norm_before = true;
  bool final_norm = true;
  int64_t position_offset = 0;  // learned positions read row position + offset (OPT: 2)
  int64_t embed_dim = 0;        // token embedding width when it differs from d_model (OPT's
                                // word_embed_proj_dim, with project_in/out); 0 = d_model
  // Rotary frequency pairs a q/k-reduced model keeps (gqa_rope_pairs), indices into the original
  // head_dim/2 pairs, ascending; empty = all of them.
  std::vector<int> rope_pairs;

  // GPT-2 attention options.
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  // GPT-Neo: "global" or "local" per layer, local window in tokens.
  std::vector<std::string> attention_types;
  int64_t window_size = 0;
  // T5.
  int64_t relative_buckets = 32;
  int64_t relative_max_distance = 128;
  bool scale_decoder_outputs = false;

  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id, decoder_start_token_id;
  // Tokens a fresh model was pretrained on (gqa_training.tokens, written by `gqa train`): the
  // reference of `gqa uptrain --fraction`.
  std::optional<int64_t> pretraining_tokens;

  // Attention layout per module and layer (T5 has three modules; others DecoderSelf only).
  std::map<AttentionModule, std::vector<AttentionLayout>> layouts;

  // WGQA folders (gqa_weighted): these modules store one K/V head per query head plus a learnable
  // scalar each; the runtime pools them into the layout's KV heads on every forward.
  std::set<AttentionModule> weighted;

  const AttentionLayout& layout(AttentionModule m, int64_t layer) const;
  // K/V heads the checkpoint stores for a block (the query-head count in weighted modules).
  int stored_kv_heads(AttentionModule m, int64_t layer) const;
  const FamilySpec& spec() const;
  bool is_encoder_decoder() const;
  int64_t embedding_width() const { return embed_dim > 0 ? embed_dim : d_model; }
  // Rotary dims per q/k head as the runtime turns them: head_dim or rotary_dim, fewer when a
  // q/k-reduced model keeps only some pairs (gqa_rope_pairs).
  int64_t rotary_dims() const;
  std::vector<AttentionModule> modules() const;
  // KV-cache bytes per token of one sequence (self-attention caches, all layers) at a dtype size.
  int64_t kv_bytes_per_token(int64_t dtype_bytes) const;
};

// The grouped-attention fields of config.json (README, "Grouped-attention fields") have this one
// owner: parse_config reads them and with_layout_fields writes them, inverses of each other
// (tests/io/test_config.cpp round-trips every family and layout). Returns cfg.raw with
// num_key_value_heads and the gqa_* layout fields replaced to describe cfg.layouts, cfg.weighted
// and cfg.rope_pairs; other fields (gqa_conversion, gqa_training, ...) are kept. Throws
// std::logic_error if the fields cannot say it (e.g. weighted modules that are not the grouped ones).
nlohmann::json with_layout_fields(const ModelConfig& cfg);

// The config.json field holding the feed-forward width of a family (n_inner, intermediate_size, d_ff).
const char* ffn_dim_field(Family f);

// Reads a whole JSON file; InputError naming the file when it cannot be opened or parsed.
nlohmann::json read_json_file(const std::string& path);

// Parses <dir>/config.json (or a file path). Throws InputError naming the file and field.
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const nlohmann::json& j, const std::string& path);

}  // namespace gqa
