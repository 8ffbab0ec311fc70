// The one list of supported families (each defined in its own file here) and the pieces several
// family files share.
#include <cmath>

#include "core/error.h"
#include "core/family.h"

namespace gqa {

extern const FamilySpec kGpt2Family, kGptNeoFamily, kLlamaFamily, kT5Family, kGptNeoXFamily, kOptFamily, kQwen2Family;

namespace {

const FamilySpec* const kFamilies[] = {&kGpt2Family,    &kGptNeoFamily, &kLlamaFamily, &kT5Family,
                                       &kGptNeoXFamily, &kOptFamily,    &kQwen2Family};

}  // namespace

const FamilySpec& family_spec(Family f) {
  for (const FamilySpec* s : kFamilies)
    if (s->family == f) return *s;
  throw std::logic_error("family without a spec in core/families/registry.cpp");
}

const FamilySpec* find_family(const std::string& model_type) {
  for (const FamilySpec* s : kFamilies)
    if (model_type == s->model_type) return s;
  return nullptr;
}

std::string family_names() {
  std::string out;
  for (const FamilySpec* s : kFamilies) out += std::string(out.empty() ? "" : ", ") + s->model_type;
  return out;
}

const char* family_name(Family f) { return family_spec(f).model_type; }

double initializer_range_std(const ModelConfig&, Role, const AttentionLayout*) { return kInitializerRange; }

BlockPlan scaled_by_head_dim(const ModelConfig& c, int64_t) { return {1.0 / std::sqrt(double(c.head_dim)), 0}; }

int64_t local_window(const ModelConfig& c, int64_t layer) {
  return c.attention_types.empty() || c.attention_types[size_t(layer)] != "local" ? 0 : c.window_size;
}

void parse_standard_sizes(const ConfigFields& f, ModelConfig& c, const char* ffn_field) {
  c.vocab_size = f.positive("vocab_size");
  c.d_model = f.positive("hidden_size");
  c.n_layers = f.count("num_hidden_layers");
  c.n_heads = f.count("num_attention_heads");
  c.ffn_dim = f.positive(ffn_field);
  c.max_positions = f.positive("max_position_embeddings");
}

void parse_llama_block(const ConfigFields& f, ModelConfig& c) {
  parse_standard_sizes(f, c, "intermediate_size");
  c.norm_eps = f.number_or("rms_norm_eps", 1e-6);
  c.activation = f.string_or("hidden_act", "silu");
  c.gated_ffn = true;
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.rope = parse_rope(f);
  if (f.has("head_dim")) c.head_dim = f.positive("head_dim");
}

nlohmann::json fresh_llama_block(const ModelShape& s, const FreshSizes& z) {
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
          {"initializer_range", kInitializerRange},
          {"tie_word_embeddings", true}};
}

RopeConfig parse_rope(const ConfigFields& f) {
  const nlohmann::json& j = f.object();
  const std::string& path = f.path();
  RopeConfig r;
  r.type = RopeType::Default;
  r.theta = f.number_or("rope_theta", 10000.0);
  // transformers >= 5 writes rope_parameters (with rope_theta inside); 4.x wrote rope_scaling.
  const nlohmann::json* p = nullptr;
  std::string key;
  for (const char* k : {"rope_parameters", "rope_scaling"})
    if (j.contains(k) && !j[k].is_null()) {
      p = &j[k];
      key = k;
      break;
    }
  if (!p) return r;
  if (!p->is_object()) throw InputError(path, key, "expected an object");
  ConfigFields rp(*p, path, key + ".");
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

}  // namespace gqa
