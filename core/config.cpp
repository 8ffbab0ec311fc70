#include "core/config.h"

#include <sys/stat.h>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/family.h"
#include "core/json_depth.h"

namespace gqa {
namespace {

using json = nlohmann::json;

}  // namespace

const char* module_name(AttentionModule m) {
  switch (m) {
    case AttentionModule::DecoderSelf: return "decoder_self";
    case AttentionModule::DecoderCross: return "decoder_cross";
    case AttentionModule::EncoderSelf: return "encoder_self";
  }
  return "?";
}

const char* ffn_dim_field(Family f) { return family_spec(f).ffn_field; }

AttentionLayout AttentionLayout::even(int n_q, int n_kv, int head_dim_qk, int head_dim_v) {
  AttentionLayout l;
  l.n_q = n_q;
  l.n_kv = n_kv;
  l.head_dim_qk = head_dim_qk;
  l.head_dim_v = head_dim_v;
  for (int h = 0; h < n_q; ++h) l.group_of.push_back(h / (n_q / n_kv));
  return l;
}

AttentionLayout AttentionLayout::latent(int n_heads, int nope_dims, int rope_dims, int value_dims, int rank,
                                        std::vector<int> rope_pairs) {
  AttentionLayout l = even(n_heads, 1, nope_dims + rope_dims, value_dims);
  l.latent_rank = rank;
  l.latent_rope_dims = rope_dims;
  l.latent_rope_pairs = std::move(rope_pairs);
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
  if (is_latent()) s << " latent" << latent_rank << " rope" << latent_rope_dims;
  return s.str();
}

void validate_group_map(const std::vector<int>& group_of, int n_q, const std::string& file, const std::string& field) {
  if (int(group_of.size()) != n_q)
    throw InputError(file, field,
                     "has " + std::to_string(group_of.size()) + " entries, expected one per query head (" +
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
      throw InputError(
          file, field,
          "KV head " + std::to_string(g) + " has no query heads (groups must be numbered 0..n_kv-1 without gaps)");
}

const AttentionLayout& ModelConfig::layout(AttentionModule m, int64_t layer) const {
  return layouts.at(m).at(size_t(layer));
}

int ModelConfig::stored_kv_heads(AttentionModule m, int64_t layer) const {
  return weighted.count(m) ? layout(m, layer).n_q : layout(m, layer).n_kv;
}

const FamilySpec& ModelConfig::spec() const { return family_spec(family); }

bool ModelConfig::is_encoder_decoder() const { return spec().encoder_decoder; }

int64_t ModelConfig::rotary_dims() const {
  if (!rope_pairs.empty()) return 2 * int64_t(rope_pairs.size());
  return rotary_dim > 0 ? rotary_dim : head_dim;
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
  for (const auto& l : layouts.at(AttentionModule::DecoderSelf)) total += l.cache_dims_per_token();
  return total * dtype_bytes;
}

namespace {

// A latent block's fields ({"rank": R, "rope_dims": D, "rope_pairs": [...]}, gqa_latent or a
// gqa_layers entry's "latent") into `l`, checked against the model's rotary pairs (0 without RoPE).
void read_latent(const json& j, const std::string& path, const std::string& field, int64_t rotary_pairs,
                 AttentionLayout& l) {
  if (!j.is_object()) throw InputError(path, field, "expected {\"rank\", \"rope_dims\", \"rope_pairs\"}");
  ConfigFields f(j, path, field + ".");
  l.latent_rank = int(f.positive("rank"));
  l.latent_rope_dims = int(f.integer_or("rope_dims", 0));
  l.latent_rope_pairs = f.has("rope_pairs") ? f.int_list(f.at("rope_pairs"), "rope_pairs") : std::vector<int>{};
  if (l.latent_rope_dims < 0 || l.latent_rope_dims % 2 || l.latent_rope_dims >= l.head_dim_qk + 1)
    throw InputError(
        path, field + ".rope_dims",
        "expected an even number of dims within the query/key head (" + std::to_string(l.head_dim_qk) + ")");
  if (int64_t(l.latent_rope_pairs.size()) * 2 != l.latent_rope_dims)
    throw InputError(path, field + ".rope_pairs", "expected one RoPE pair per two rope_dims");
  for (int pair : l.latent_rope_pairs)
    if (pair >= rotary_pairs)
      throw InputError(path, field + ".rope_pairs",
                       "pair " + std::to_string(pair) + " is not one of the model's " + std::to_string(rotary_pairs) +
                           " rotary pairs");
  if (l.n_kv != 1) throw InputError(path, field, "a latent block caches one shared entry: expected one KV head");
}

json latent_json(const AttentionLayout& l) {
  if (!l.is_latent()) return nullptr;
  return {{"rank", l.latent_rank}, {"rope_dims", l.latent_rope_dims}, {"rope_pairs", l.latent_rope_pairs}};
}

bool same_latent(const AttentionLayout& a, const AttentionLayout& b) {
  return a.latent_rank == b.latent_rank && a.latent_rope_dims == b.latent_rope_dims &&
         a.latent_rope_pairs == b.latent_rope_pairs;
}

}  // namespace

ModelConfig parse_config(const json& j, const std::string& path) {
  if (!j.is_object()) throw InputError(path, "", "expected a JSON object");
  ConfigFields f(j, path);
  ModelConfig c;
  c.path = path;
  c.raw = j;
  const std::string model_type = f.string_or("model_type", "");
  const FamilySpec* spec = find_family(model_type);
  if (!spec)
    throw InputError(path, "model_type",
                     (model_type.empty() ? std::string("missing") : "unsupported '" + model_type + "'") +
                         " (expected " + family_names() + ")");
  c.family = spec->family;
  spec->parse(f, c);
  int64_t head_dim = c.head_dim;
  const char* heads_key = spec->heads_field;
  if (head_dim == 0) {
    if (c.d_model % c.n_heads != 0)
      throw InputError(
          path, heads_key,
          "hidden size " + std::to_string(c.d_model) + " is not divisible by " + std::to_string(c.n_heads) + " heads");
    head_dim = c.d_model / c.n_heads;
  }
  c.head_dim = head_dim;
  if (c.rotary_dim > 0 && (c.rotary_dim > head_dim || c.rotary_dim % 2 != 0))
    throw InputError(path, "rope_parameters.partial_rotary_factor",
                     "gives " + std::to_string(c.rotary_dim) + " rotary dims of a " + std::to_string(head_dim) +
                         "-dim head; expected an even number up to the head size");
  c.bos_token_id = f.optional_id("bos_token_id");
  c.eos_token_id = f.optional_id("eos_token_id");
  c.pad_token_id = f.optional_id("pad_token_id");
  if (f.has("gqa_training")) {
    if (!f.at("gqa_training").is_object()) throw InputError(path, "gqa_training", "expected an object");
    const ConfigFields training(f.at("gqa_training"), path, "gqa_training.");
    if (training.has("tokens")) c.pretraining_tokens = training.integer("tokens");
  }

  // Attention layout: MHA unless num_key_value_heads / gqa_* fields say otherwise. A converted
  // T5 lists the modules the fields apply to in gqa_modules; the others stay MHA.
  const int n_q = int(c.n_heads);
  const int64_t n_kv64 = f.integer_or("num_key_value_heads", n_q);
  if (n_kv64 <= 0 || n_kv64 > n_q)
    throw InputError(
        path, "num_key_value_heads",
        std::to_string(n_kv64) + " must be between 1 and num_attention_heads (" + std::to_string(n_q) + ")");
  const int n_kv = int(n_kv64);
  if (n_q % n_kv != 0 && !f.has("gqa_group_map"))
    throw InputError(path, "num_key_value_heads",
                     std::to_string(n_kv) + " must divide num_attention_heads (" + std::to_string(n_q) +
                         ") unless gqa_group_map is given");
  AttentionLayout grouped = AttentionLayout::even(n_q, n_q % n_kv == 0 ? n_kv : n_q, int(head_dim), int(head_dim));
  if (f.has("gqa_group_map")) {
    grouped.group_of = f.int_list(f.at("gqa_group_map"), "gqa_group_map");
    validate_group_map(grouped.group_of, n_q, path, "gqa_group_map");
    grouped.n_kv = *std::max_element(grouped.group_of.begin(), grouped.group_of.end()) + 1;
    if (f.has("num_key_value_heads") && grouped.n_kv != n_kv)
      throw InputError(
          path, "gqa_group_map",
          "uses " + std::to_string(grouped.n_kv) + " KV heads but num_key_value_heads is " + std::to_string(n_kv));
  }
  grouped.head_dim_qk = int(f.has("gqa_qk_head_dim") ? f.positive("gqa_qk_head_dim") : head_dim);
  grouped.head_dim_v = int(f.has("gqa_v_head_dim") ? f.positive("gqa_v_head_dim") : head_dim);
  if (f.has("gqa_rope_pairs")) {
    c.rope_pairs = f.int_list(f.at("gqa_rope_pairs"), "gqa_rope_pairs");
    const int64_t pairs = (c.rotary_dim > 0 ? c.rotary_dim : head_dim) / 2;
    for (size_t i = 0; i < c.rope_pairs.size(); ++i)
      if (c.rope_pairs[i] >= pairs || (i > 0 && c.rope_pairs[i] <= c.rope_pairs[i - 1]))
        throw InputError(path, "gqa_rope_pairs", "expected ascending pair indices below " + std::to_string(pairs));
  }
  const int64_t rotary_pairs = c.rope.type == RopeType::None ? 0 : (c.rotary_dim > 0 ? c.rotary_dim : head_dim) / 2;
  if (f.has("gqa_latent")) read_latent(f.at("gqa_latent"), path, "gqa_latent", rotary_pairs, grouped);
  if (c.rope.type != RopeType::None && !grouped.is_latent() && grouped.head_dim_qk % 2 != 0)
    throw InputError(
        path,
        f.has("gqa_qk_head_dim") ? "gqa_qk_head_dim"
        : f.has("head_dim")      ? "head_dim"
                                 : heads_key,
        "the query/key head size " + std::to_string(grouped.head_dim_qk) + " must be even for rotary embeddings");

  const AttentionLayout mha = AttentionLayout::even(n_q, n_q, int(head_dim), int(head_dim));
  std::set<AttentionModule> converted;
  if (c.is_encoder_decoder() && f.has("gqa_modules")) {
    if (!f.at("gqa_modules").is_array()) throw InputError(path, "gqa_modules", "expected a list of module names");
    for (const auto& m : f.at("gqa_modules")) {
      bool found = false;
      for (AttentionModule am : c.modules())
        if (m.is_string() && m.get<std::string>() == module_name(am)) {
          converted.insert(am);
          found = true;
        }
      if (!found)
        throw InputError(path, "gqa_modules", "unknown module (expected encoder_self, decoder_self, decoder_cross)");
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
      if (!mod || !mit->is_object())
        throw InputError(path, "gqa_layers." + mit.key(), "unknown module or not an object");
      for (auto lit = mit->begin(); lit != mit->end(); ++lit) {
        std::string field = "gqa_layers." + mit.key() + "." + lit.key();
        const std::string& key = lit.key();
        if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos)
          throw InputError(path, field, "layer index is not a number");
        const size_t layer = std::stoul(key);
        auto& layers = c.layouts[*mod];
        if (layer >= layers.size() || !lit->is_object())
          throw InputError(path, field, "layer out of range or not an object");
        ConfigFields lf(*lit, path, field + ".");
        AttentionLayout& l = layers[layer];
        if (lf.has("group_map")) {
          l.group_of = lf.int_list(lf.at("group_map"), "group_map");
          validate_group_map(l.group_of, n_q, path, field + ".group_map");
          l.n_kv = *std::max_element(l.group_of.begin(), l.group_of.end()) + 1;
        }
        if (lf.has("head_dim_qk")) l.head_dim_qk = int(lf.positive("head_dim_qk"));
        if (lf.has("head_dim_v")) l.head_dim_v = int(lf.positive("head_dim_v"));
        if (lit->contains("latent")) {  // null: this layer is not latent where the base is
          l.latent_rank = l.latent_rope_dims = 0;
          l.latent_rope_pairs.clear();
          if (!lit->at("latent").is_null()) read_latent(lit->at("latent"), path, field + ".latent", rotary_pairs, l);
        }
        if (c.rope.type != RopeType::None && !l.is_latent() && l.head_dim_qk % 2 != 0)
          throw InputError(path, field + ".head_dim_qk", "must be even for rotary embeddings");
        if (l.is_latent() && l.n_kv != 1)
          throw InputError(path, field, "a latent layer caches one shared entry: expected one KV head");
      }
    }
  }
  return c;
}

json with_layout_fields(const ModelConfig& cfg) {
  json j = cfg.raw;
  for (const char* k : {"gqa_group_map", "gqa_qk_head_dim", "gqa_v_head_dim", "gqa_modules", "gqa_layers",
                        "gqa_weighted", "gqa_rope_pairs", "gqa_latent", "num_key_value_heads"})
    j.erase(k);
  auto same = [](const AttentionLayout& a, const AttentionLayout& b) {
    return a.group_of == b.group_of && a.head_dim_qk == b.head_dim_qk && a.head_dim_v == b.head_dim_v &&
           same_latent(a, b);
  };
  // Modules with any non-MHA block carry the fields; the first such block is the base layout.
  std::vector<AttentionModule> grouped;
  const AttentionLayout mha =
      AttentionLayout::even(int(cfg.n_heads), int(cfg.n_heads), int(cfg.head_dim), int(cfg.head_dim));
  for (AttentionModule m : cfg.modules())
    for (const auto& l : cfg.layouts.at(m))
      if (!same(l, mha)) {
        grouped.push_back(m);
        break;
      }
  const AttentionLayout base = grouped.empty() ? mha : cfg.layouts.at(grouped.front()).front();
  if (cfg.spec().kv_heads_field || !grouped.empty()) j["num_key_value_heads"] = base.n_kv;
  if (!base.is_contiguous_even()) j["gqa_group_map"] = base.group_of;
  if (base.head_dim_qk != cfg.head_dim) j["gqa_qk_head_dim"] = base.head_dim_qk;
  if (base.head_dim_v != cfg.head_dim) j["gqa_v_head_dim"] = base.head_dim_v;
  if (base.is_latent()) j["gqa_latent"] = latent_json(base);
  if (cfg.is_encoder_decoder()) {
    j["gqa_modules"] = json::array();
    for (AttentionModule m : grouped) j["gqa_modules"].push_back(module_name(m));
  }
  for (AttentionModule m : cfg.modules()) {
    const bool in_fields = std::find(grouped.begin(), grouped.end(), m) != grouped.end() || !cfg.is_encoder_decoder();
    const AttentionLayout& expect = in_fields ? base : mha;
    const auto& ls = cfg.layouts.at(m);
    for (size_t l = 0; l < ls.size(); ++l)
      if (!same(ls[l], expect)) {
        json& entry = j["gqa_layers"][module_name(m)][std::to_string(l)];
        entry = {{"group_map", ls[l].group_of}, {"head_dim_qk", ls[l].head_dim_qk}, {"head_dim_v", ls[l].head_dim_v}};
        if (!same_latent(ls[l], expect)) entry["latent"] = latent_json(ls[l]);
      }
  }
  if (!cfg.weighted.empty()) j["gqa_weighted"] = true;
  if (!cfg.rope_pairs.empty()) j["gqa_rope_pairs"] = cfg.rope_pairs;
  // The fields must describe exactly these layouts.
  const ModelConfig back = parse_config(j, cfg.path);
  for (AttentionModule m : cfg.modules())
    for (size_t l = 0; l < cfg.layouts.at(m).size(); ++l)
      if (!same(back.layouts.at(m)[l], cfg.layouts.at(m)[l]))
        throw std::logic_error("config fields do not reproduce the layout of " + std::string(module_name(m)) + " " +
                               std::to_string(l));
  if (back.weighted != cfg.weighted)
    throw std::logic_error("gqa_weighted applies to the grouped modules; these weighted modules are not them");
  return j;
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
