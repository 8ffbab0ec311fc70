#include "core/config.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "core/error.h"
#include "core/json_depth.h"

namespace gqa {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxCount = 4096;  // layers, heads

// Typed field access that names the file and field on every mismatch.
class Fields {
 public:
  // `prefix` names nested objects in errors ("rope_parameters." + "factor").
  Fields(const json& j, const std::string& path, std::string prefix = "")
      : j_(j), path_(path), prefix_(std::move(prefix)) {}
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t integer(const char* key) const {
    if (!has(key)) throw InputError(path_, prefix_ + key, "missing (expected an integer)");
    return integer_of(j_[key], key);
  }
  int64_t integer_or(const char* key, int64_t dflt) const { return has(key) ? integer(key) : dflt; }
  int64_t positive(const char* key) const {
    int64_t v = integer(key);
    if (v <= 0 || v >= (int64_t(1) << 31)) throw InputError(path_, prefix_ + key, "expected a positive integer, got " + std::to_string(v));
    return v;
  }
  // Layer and head counts: each sizes per-layer tables here, so a lying config.json could ask for
  // billions of entries. The limit is gqa train's too (core/init_model.cpp).
  int64_t count(const char* key) const {
    int64_t v = integer(key);
    if (v <= 0 || v > kMaxCount)
      throw InputError(path_, prefix_ + key, "expected a positive integer up to " + std::to_string(kMaxCount) + ", got " + std::to_string(v));
    return v;
  }
  double number_or(const char* key, double dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_number()) throw InputError(path_, prefix_ + key, "expected a number");
    return j_[key].get<double>();
  }
  bool boolean_or(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_boolean()) throw InputError(path_, prefix_ + key, "expected true or false");
    return j_[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_string()) throw InputError(path_, prefix_ + key, "expected a string");
    return j_[key].get<std::string>();
  }
  std::optional<int64_t> optional_id(const char* key) const {
    if (!has(key)) return std::nullopt;
    if (j_[key].is_array()) {  // e.g. Llama-3 lists several EOS ids: keep the first
      if (j_[key].empty()) return std::nullopt;
      return integer_of(j_[key][0], key);
    }
    return integer_of(j_[key], key);
  }
  int64_t integer_of(const json& v, const std::string& key) const {
    if (!v.is_number_integer()) throw InputError(path_, prefix_ + key, "expected an integer");
    return v.get<int64_t>();
  }
  std::vector<int> int_list(const json& v, const std::string& key) const {
    if (!v.is_array()) throw InputError(path_, prefix_ + key, "expected a list of integers");
    std::vector<int> out;
    for (const auto& e : v) {
      int64_t x = integer_of(e, key);
      if (x < 0 || x > 1 << 20) throw InputError(path_, prefix_ + key, "entry " + std::to_string(x) + " out of range");
      out.push_back(int(x));
    }
    return out;
  }
  const json& at(const char* key) const { return j_.at(key); }

 private:
  const json& j_;
  std::string path_;
  std::string prefix_;
};

Family parse_family(const Fields& f, const std::string& path) {
  std::string t = f.string_or("model_type", "");
  if (t == "gpt2") return Family::GPT2;
  if (t == "gpt_neo") return Family::GPTNeo;
  if (t == "t5") return Family::T5;
  if (t == "llama") return Family::Llama;
  throw InputError(path, "model_type", t.empty() ? "missing (expected gpt2, gpt_neo, t5 or llama)"
                                                 : "unsupported '" + t + "' (expected gpt2, gpt_neo, t5 or llama)");
}

RopeConfig parse_rope(const Fields& f, const json& j, const std::string& path) {
  RopeConfig r;
  r.type = RopeType::Default;
  r.theta = f.number_or("rope_theta", 10000.0);
  // transformers >= 5 writes rope_parameters (with rope_theta inside); 4.x wrote rope_scaling.
  const json* p = nullptr;
  std::string key;
  for (const char* k : {"rope_parameters", "rope_scaling"})
    if (j.contains(k) && !j[k].is_null()) { p = &j[k]; key = k; break; }
  if (!p) return r;
  if (!p->is_object()) throw InputError(path, key, "expected an object");
  Fields rp(*p, path, key + ".");
  r.theta = rp.number_or("rope_theta", r.theta);
  std::string type = rp.string_or("rope_type", rp.string_or("type", "default"));
  if (type == "default") {
    r.type = RopeType::Default;
  } else if (type == "linear") {
    r.type = RopeType::Linear;
    r.factor = rp.number_or("factor", 1.0);
  } else if (type == "llama3") {
    r.type = RopeType::Llama3;
    r.factor = rp.number_or("factor", 8.0);
    r.low_freq_factor = rp.number_or("low_freq_factor", 1.0);
    r.high_freq_factor = rp.number_or("high_freq_factor", 4.0);
    r.original_max_positions = rp.integer_or("original_max_position_embeddings", 8192);
  } else {
    throw InputError(path, key + ".rope_type", "unsupported '" + type + "' (supported: default, linear, llama3)");
  }
  if (!(r.factor > 0)) throw InputError(path, key + ".factor", "expected a positive number");
  return r;
}

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::GPT2: return "gpt2";
    case Family::GPTNeo: return "gpt_neo";
    case Family::T5: return "t5";
    case Family::Llama: return "llama";
  }
  return "?";
}

const char* module_name(AttentionModule m) {
  switch (m) {
    case AttentionModule::DecoderSelf: return "decoder_self";
    case AttentionModule::DecoderCross: return "decoder_cross";
    case AttentionModule::EncoderSelf: return "encoder_self";
  }
  return "?";
}

const char* ffn_dim_field(Family f) {
  switch (f) {
    case Family::GPT2: return "n_inner";
    case Family::T5: return "d_ff";
    case Family::GPTNeo:
    case Family::Llama: return "intermediate_size";
  }
  return "?";
}

AttentionLayout AttentionLayout::even(int n_q, int n_kv, int head_dim_qk, int head_dim_v) {
  AttentionLayout l;
  l.n_q = n_q;
  l.n_kv = n_kv;
  l.head_dim_qk = head_dim_qk;
  l.head_dim_v = head_dim_v;
  for (int h = 0; h < n_q; ++h) l.group_of.push_back(h / (n_q / n_kv));
  return l;
}

bool AttentionLayout::is_mha() const {
  if (n_kv != n_q) return false;
  for (int h = 0; h < n_q; ++h)
    if (group_of[h] != h) return false;
  return true;
}

bool AttentionLayout::is_contiguous_even() const {
  if (n_kv <= 0 || n_q % n_kv != 0) return false;
  for (int h = 0; h < n_q; ++h)
    if (group_of[h] != h / (n_q / n_kv)) return false;
  return true;
}

std::vector<int> AttentionLayout::group_sizes() const {
  std::vector<int> sizes(size_t(n_kv), 0);
  for (int g : group_of) ++sizes[size_t(g)];
  return sizes;
}

std::string AttentionLayout::describe() const {
  std::ostringstream s;
  s << n_q << "q/" << n_kv << "kv [";
  auto sizes = group_sizes();
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? "," : "") << sizes[i];
  s << "] qk" << head_dim_qk << " v" << head_dim_v;
  return s.str();
}

void validate_group_map(const std::vector<int>& group_of, int n_q, const std::string& file,
                        const std::string& field) {
  if (int(group_of.size()) != n_q)
    throw InputError(file, field, "has " + std::to_string(group_of.size()) + " entries, expected one per query head (" +
                                      std::to_string(n_q) + ")");
  int n_kv = 0;
  for (int g : group_of) n_kv = std::max(n_kv, g + 1);
  std::vector<int> count(size_t(n_kv), 0);
  for (int g : group_of) {
    if (g < 0) throw InputError(file, field, "negative group index");
    ++count[size_t(g)];
  }
  for (int g = 0; g < n_kv; ++g)
    if (count[size_t(g)] == 0)
      throw InputError(file, field, "KV head " + std::to_string(g) + " has no query heads (groups must be numbered 0..n_kv-1 without gaps)");
}

const AttentionLayout& ModelConfig::layout(AttentionModule m, int64_t layer) const {
  return layouts.at(m).at(size_t(layer));
}

int ModelConfig::stored_kv_heads(AttentionModule m, int64_t layer) const {
  return weighted.count(m) ? layout(m, layer).n_q : layout(m, layer).n_kv;
}

std::vector<AttentionModule> ModelConfig::modules() const {
  if (is_encoder_decoder())
    return {AttentionModule::EncoderSelf, AttentionModule::DecoderSelf, AttentionModule::DecoderCross};
  return {AttentionModule::DecoderSelf};
}

int64_t ModelConfig::kv_bytes_per_token(int64_t dtype_bytes) const {
  // The decoder's self-attention cache grows with every generated token; T5's cross-attention
  // cache is per source token and reported separately by inspect.
  int64_t total = 0;
  for (const auto& l : layouts.at(AttentionModule::DecoderSelf)) total += int64_t(l.n_kv) * (l.head_dim_qk + l.head_dim_v);
  return total * dtype_bytes;
}

ModelConfig parse_config(const json& j, const std::string& path) {
  if (!j.is_object()) throw InputError(path, "", "expected a JSON object");
  Fields f(j, path);
  ModelConfig c;
  c.path = path;
  c.raw = j;
  c.family = parse_family(f, path);
  int64_t head_dim = 0;
  const char* heads_key = "num_heads";  // the family's name for the head count, for errors
  switch (c.family) {
    case Family::GPT2:
      c.vocab_size = f.positive("vocab_size");
      c.d_model = f.positive("n_embd");
      c.n_layers = f.count("n_layer");
      c.n_heads = f.count("n_head");
      heads_key = "n_head";
      c.ffn_dim = f.has("n_inner") ? f.positive("n_inner") : 4 * c.d_model;
      c.max_positions = f.positive("n_positions");
      c.norm_eps = f.number_or("layer_norm_epsilon", 1e-5);
      c.activation = f.string_or("activation_function", "gelu_new");
      c.scale_attn_weights = f.boolean_or("scale_attn_weights", true);
      c.scale_attn_by_inverse_layer_idx = f.boolean_or("scale_attn_by_inverse_layer_idx", false);
      c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", true);
      if (f.boolean_or("add_cross_attention", false))
        throw InputError(path, "add_cross_attention", "GPT-2 with cross-attention is not supported");
      break;
    case Family::GPTNeo: {
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
      // attention_types: [[["global","local"], repeat], ...] expands to one entry per layer.
      if (f.has("attention_types")) {
        const json& at = f.at("attention_types");
        if (!at.is_array()) throw InputError(path, "attention_types", "expected [[[types...], repeat], ...]");
        for (const auto& item : at) {
          if (!item.is_array() || item.size() != 2 || !item[0].is_array() || !item[1].is_number_integer())
            throw InputError(path, "attention_types", "expected [[[types...], repeat], ...]");
          for (int64_t r = 0; r < item[1].get<int64_t>() && r < 1 << 16; ++r)
            for (const auto& t : item[0]) {
              if (!t.is_string() || (t != "global" && t != "local"))
                throw InputError(path, "attention_types", "entries must be \"global\" or \"local\"");
              c.attention_types.push_back(t.get<std::string>());
              if (int64_t(c.attention_types.size()) > c.n_layers)  // before a huge repeat allocates
                throw InputError(path, "attention_types", "expands to more than num_layers (" + std::to_string(c.n_layers) + ") layers");
            }
        }
      } else {
        c.attention_types.assign(size_t(c.n_layers), "global");
      }
      if (int64_t(c.attention_types.size()) != c.n_layers)
        throw InputError(path, "attention_types", "expands to " + std::to_string(c.attention_types.size()) +
                                                      " layers, num_layers is " + std::to_string(c.n_layers));
      break;
    }
    case Family::T5: {
      c.vocab_size = f.positive("vocab_size");
      c.d_model = f.positive("d_model");
      c.n_encoder_layers = f.count("num_layers");
      c.n_layers = f.has("num_decoder_layers") ? f.count("num_decoder_layers") : c.n_encoder_layers;
      c.n_heads = f.count("num_heads");
      head_dim = f.positive("d_kv");
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
      break;
    }
    case Family::Llama:
      c.vocab_size = f.positive("vocab_size");
      c.d_model = f.positive("hidden_size");
      c.n_layers = f.count("num_hidden_layers");
      c.n_heads = f.count("num_attention_heads");
      heads_key = "num_attention_heads";
      c.ffn_dim = f.positive("intermediate_size");
      c.max_positions = f.positive("max_position_embeddings");
      c.norm_eps = f.number_or("rms_norm_eps", 1e-6);
      c.activation = f.string_or("hidden_act", "silu");
      c.gated_ffn = true;
      c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
      c.attention_bias = f.boolean_or("attention_bias", false);
      c.mlp_bias = f.boolean_or("mlp_bias", false);
      c.rope = parse_rope(f, j, path);
      if (f.integer_or("pretraining_tp", 1) != 1)
        throw InputError(path, "pretraining_tp", "only 1 is supported");
      if (f.has("head_dim")) head_dim = f.positive("head_dim");
      break;
  }
  if (head_dim == 0) {
    if (c.d_model % c.n_heads != 0)
      throw InputError(path, heads_key, "hidden size " + std::to_string(c.d_model) + " is not divisible by " +
                                              std::to_string(c.n_heads) + " heads");
    head_dim = c.d_model / c.n_heads;
  }
  c.head_dim = head_dim;
  c.bos_token_id = f.optional_id("bos_token_id");
  c.eos_token_id = f.optional_id("eos_token_id");
  c.pad_token_id = f.optional_id("pad_token_id");

  // Attention layout: MHA unless num_key_value_heads / gqa_* fields say otherwise. A converted
  // T5 lists the modules the fields apply to in gqa_modules; the others stay MHA.
  const int n_q = int(c.n_heads);
  const int64_t n_kv64 = f.integer_or("num_key_value_heads", n_q);
  if (n_kv64 <= 0 || n_kv64 > n_q)
    throw InputError(path, "num_key_value_heads", std::to_string(n_kv64) + " must be between 1 and num_attention_heads (" +
                                                      std::to_string(n_q) + ")");
  const int n_kv = int(n_kv64);
  if (n_q % n_kv != 0 && !f.has("gqa_group_map"))
    throw InputError(path, "num_key_value_heads", std::to_string(n_kv) + " must divide num_attention_heads (" +
                                                      std::to_string(n_q) + ") unless gqa_group_map is given");
  AttentionLayout grouped = AttentionLayout::even(n_q, n_q % n_kv == 0 ? n_kv : n_q, int(head_dim), int(head_dim));
  if (f.has("gqa_group_map")) {
    grouped.group_of = f.int_list(f.at("gqa_group_map"), "gqa_group_map");
    validate_group_map(grouped.group_of, n_q, path, "gqa_group_map");
    grouped.n_kv = *std::max_element(grouped.group_of.begin(), grouped.group_of.end()) + 1;
    if (f.has("num_key_value_heads") && grouped.n_kv != n_kv)
      throw InputError(path, "gqa_group_map", "uses " + std::to_string(grouped.n_kv) +
                                                  " KV heads but num_key_value_heads is " + std::to_string(n_kv));
  }
  grouped.head_dim_qk = int(f.has("gqa_qk_head_dim") ? f.positive("gqa_qk_head_dim") : head_dim);
  grouped.head_dim_v = int(f.has("gqa_v_head_dim") ? f.positive("gqa_v_head_dim") : head_dim);
  if (f.has("gqa_rope_pairs")) {
    c.rope_pairs = f.int_list(f.at("gqa_rope_pairs"), "gqa_rope_pairs");
    for (size_t i = 0; i < c.rope_pairs.size(); ++i)
      if (c.rope_pairs[i] >= head_dim / 2 || (i > 0 && c.rope_pairs[i] <= c.rope_pairs[i - 1]))
        throw InputError(path, "gqa_rope_pairs", "expected ascending pair indices below " + std::to_string(head_dim / 2));
  }
  if (c.rope.type != RopeType::None && grouped.head_dim_qk % 2 != 0)
    throw InputError(path, f.has("gqa_qk_head_dim") ? "gqa_qk_head_dim" : f.has("head_dim") ? "head_dim" : heads_key,
                     "the query/key head size " + std::to_string(grouped.head_dim_qk) + " must be even for rotary embeddings");

  const AttentionLayout mha = AttentionLayout::even(n_q, n_q, int(head_dim), int(head_dim));
  std::set<AttentionModule> converted;
  if (c.is_encoder_decoder() && f.has("gqa_modules")) {
    if (!f.at("gqa_modules").is_array()) throw InputError(path, "gqa_modules", "expected a list of module names");
    for (const auto& m : f.at("gqa_modules")) {
      bool found = false;
      for (AttentionModule am : c.modules())
        if (m.is_string() && m.get<std::string>() == module_name(am)) { converted.insert(am); found = true; }
      if (!found) throw InputError(path, "gqa_modules", "unknown module (expected encoder_self, decoder_self, decoder_cross)");
    }
  } else if (c.is_encoder_decoder()) {
    converted = {AttentionModule::DecoderSelf, AttentionModule::DecoderCross};
  } else {
    converted = {AttentionModule::DecoderSelf};
  }
  if (f.boolean_or("gqa_weighted", false)) c.weighted = converted;
  for (AttentionModule m : c.modules()) {
    int64_t layers = m == AttentionModule::EncoderSelf ? c.n_encoder_layers : c.n_layers;
    c.layouts[m].assign(size_t(layers), converted.count(m) ? grouped : mha);
  }
  // Per-layer overrides: {"decoder_self": {"3": {"group_map": [...], "head_dim_qk": d, "head_dim_v": d}}}.
  if (f.has("gqa_layers")) {
    const json& ov = f.at("gqa_layers");
    if (!ov.is_object()) throw InputError(path, "gqa_layers", "expected {module: {layer: layout}}");
    for (auto mit = ov.begin(); mit != ov.end(); ++mit) {
      std::optional<AttentionModule> mod;
      for (AttentionModule am : c.modules())
        if (mit.key() == module_name(am)) mod = am;
      if (!mod || !mit->is_object()) throw InputError(path, "gqa_layers." + mit.key(), "unknown module or not an object");
      for (auto lit = mit->begin(); lit != mit->end(); ++lit) {
        std::string field = "gqa_layers." + mit.key() + "." + lit.key();
        const std::string& key = lit.key();
        if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos)
          throw InputError(path, field, "layer index is not a number");
        const size_t layer = std::stoul(key);
        auto& layers = c.layouts[*mod];
        if (layer >= layers.size() || !lit->is_object()) throw InputError(path, field, "layer out of range or not an object");
        Fields lf(*lit, path, field + ".");
        AttentionLayout& l = layers[layer];
        if (lf.has("group_map")) {
          l.group_of = lf.int_list(lf.at("group_map"), "group_map");
          validate_group_map(l.group_of, n_q, path, field + ".group_map");
          l.n_kv = *std::max_element(l.group_of.begin(), l.group_of.end()) + 1;
        }
        if (lf.has("head_dim_qk")) l.head_dim_qk = int(lf.positive("head_dim_qk"));
        if (lf.has("head_dim_v")) l.head_dim_v = int(lf.positive("head_dim_v"));
        if (c.rope.type != RopeType::None && l.head_dim_qk % 2 != 0)
          throw InputError(path, field + ".head_dim_qk", "must be even for rotary embeddings");
      }
    }
  }
  return c;
}

namespace {

// Parses the JSON text of `path`, refusing nesting too deep for the recursive parts of nlohmann.
json parse_json_text(const std::string& text, const std::string& path) {
  check_json_depth(text, path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(path, "", std::string("invalid JSON (") + e.what() + ")");
  }
}

bool read_whole_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

ModelConfig load_config(const std::string& path_in) {
  struct stat st {};
  std::string path = path_in;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/config.json";
  std::string text;
  if (!read_whole_file(path, &text)) throw InputError(path, "", "cannot open (is this a Hugging Face model folder?)");
  return parse_config(parse_json_text(text, path), path);
}

nlohmann::json read_json_file(const std::string& path) {
  std::string text;
  if (!read_whole_file(path, &text)) throw InputError(path, "", "cannot open");
  return parse_json_text(text, path);
}

}  // namespace gqa
