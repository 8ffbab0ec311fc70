#include "core/init_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <stdexcept>

#include "core/arch.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/family.h"
#include "core/safetensors.h"

namespace gqa {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// The shape JSON

const char* const kShapeKeys[] = {"family",       "layers",       "encoder_layers", "d_model",     "heads",
                                  "head_dim",     "kv_heads",     "group_map",      "qk_head_dim", "v_head_dim",
                                  "ffn_dim",      "vocab_size",   "max_positions",  "activation",  "window_size",
                                  "bos_token_id", "eos_token_id", "pad_token_id"};

// Activations the runtime implements (core/model/layers.cpp); T5 may prefix "gated-".
const char* const kActivations[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu", "swish"};

// Limits that keep layouts small and parameter counts far from int64 overflow; a typo such as
// "layers": 100000000 is an error rather than an allocation that never ends.
constexpr int64_t kMaxCount = kMaxConfigCount;  // layers, heads: as many as config.json may state
constexpr int64_t kMaxSize = int64_t(1) << 24;  // widths, vocabulary, positions, window

std::string activation_of(const ModelShape& s) {
  return s.activation.empty() ? family_spec(s.family).default_activation : s.activation;
}

bool gated_ffn(const ModelShape& s) {
  const FeedForwardKind kind = family_spec(s.family).feed_forward;
  return kind == FeedForwardKind::Gated ||
         (kind == FeedForwardKind::ByActivation && activation_of(s).rfind("gated-", 0) == 0);
}

// The token ids of a fresh config.json, null when not given (a family's own default, such as
// GPT-2's 50256, could point outside the vocabulary); a pad id the family's config set stays.
void add_token_ids(json& j, const ModelShape& s) {
  auto id = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
  j["bos_token_id"] = id(s.bos_token_id);
  j["eos_token_id"] = id(s.eos_token_id);
  if (!j.contains("pad_token_id")) j["pad_token_id"] = id(s.pad_token_id);
}

int64_t head_dim_of(const ModelShape& s) { return s.head_dim > 0 ? s.head_dim : s.d_model / s.n_heads; }

int kv_heads_of(const ModelShape& s) {
  if (s.group_map) return *std::max_element(s.group_map->begin(), s.group_map->end()) + 1;
  return s.kv_heads ? *s.kv_heads : int(s.n_heads);
}

// The layout the grouped modules of a fresh model get.
AttentionLayout intended_layout(const ModelShape& s) {
  const int hd = int(head_dim_of(s));
  AttentionLayout l = AttentionLayout::even(int(s.n_heads), s.group_map ? int(s.n_heads) : kv_heads_of(s), hd, hd);
  if (s.group_map) {
    l.group_of = *s.group_map;
    l.n_kv = kv_heads_of(s);
  }
  l.head_dim_qk = s.qk_head_dim.value_or(hd);
  l.head_dim_v = s.v_head_dim.value_or(hd);
  return l;
}

// Typed reads of the shape JSON that name the file and key on every mismatch.
class ShapeReader {
 public:
  ShapeReader(const json& j, const std::string& file) : j_(j), file_(file) {}
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t integer(const char* key) const {
    const json& v = j_[key];
    if (!v.is_number_integer()) throw InputError(file_, key, "expected an integer, got " + v.dump());
    return v.get<int64_t>();
  }
  std::string string(const char* key) const {
    const json& v = j_[key];
    if (!v.is_string()) throw InputError(file_, key, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::vector<int> int_list(const char* key) const {
    const json& v = j_[key];
    if (!v.is_array() || v.empty())
      throw InputError(file_, key, "expected a list of KV head indices, one per query head");
    std::vector<int> out;
    for (const auto& e : v) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > kMaxSize)
        throw InputError(file_, key, "expected non-negative integers, got " + e.dump());
      out.push_back(int(e.get<int64_t>()));
    }
    return out;
  }

 private:
  const json& j_;
  const std::string& file_;
};

// ---------------------------------------------------------------------------------------------
// The tensors of a fresh model

// How transformers' _init_weights fills a tensor.
struct Init {
  enum class Kind { Normal, Ones, Zeros } kind = Kind::Zeros;
  double std = 0;
  std::optional<int64_t> zero_row;  // nn.Embedding(padding_idx): that row starts at zero
  bool operator==(const Init& o) const { return kind == o.kind && std == o.std && zero_row == o.zero_row; }
};
Init normal(double std) { return {Init::Kind::Normal, std, std::nullopt}; }
const Init kOnes{Init::Kind::Ones, 0, std::nullopt};
const Init kZeros{Init::Kind::Zeros, 0, std::nullopt};

// One role of one block, shaped as the runtime sees it (Linear layout [out, in], or a vector).
struct RoleTensor {
  Stack stack;
  Role role;
  int64_t layer;
  std::vector<int64_t> shape;
  Init init;
};

// Every tensor a fresh model of this config has, by role: the one place that knows which roles a
// family's blocks hold. Names come from core/arch.h's table (stored_tensors below).
std::vector<RoleTensor> initial_roles(const ModelConfig& c) {
  const FamilySpec& spec = c.spec();
  const bool layer_norm = spec.norm == NormKind::LayerNorm;  // else RMSNorm
  const int64_t d = c.d_model, f = c.ffn_dim;
  std::vector<RoleTensor> out;

  auto weight = [&](Stack s, Role r, int64_t layer, std::vector<int64_t> shape, const AttentionLayout* l = nullptr) {
    out.push_back({s, r, layer, std::move(shape), normal(spec.init_std(c, r, l))});
  };
  // Biases start at zero; the table says which ones the family has (GPT-Neo: only out_proj's).
  auto bias = [&](Stack s, std::optional<Role> r, int64_t layer, int64_t size) {
    if (r && locate(c, s, *r, layer)) out.push_back({s, *r, layer, {size}, kZeros});
  };
  auto norm = [&](Stack s, Role w, Role b, int64_t layer) {
    out.push_back({s, w, layer, {d}, kOnes});
    if (layer_norm) out.push_back({s, b, layer, {d}, kZeros});
  };
  auto attention = [&](AttentionModule m, int64_t layer) {
    const AttentionLayout& l = c.layout(m, layer);
    const AttentionRoles a = attention_roles(m);
    const int64_t q = int64_t(l.n_q) * l.head_dim_qk, k = int64_t(l.n_kv) * l.head_dim_qk,
                  v = int64_t(l.n_kv) * l.head_dim_v, o_in = int64_t(l.n_q) * l.head_dim_v;
    weight(a.stack, a.q, layer, {q, d}, &l);
    weight(a.stack, a.k, layer, {k, d}, &l);
    weight(a.stack, a.v, layer, {v, d}, &l);
    weight(a.stack, a.o, layer, {d, o_in}, &l);
    if (!c.attention_bias) return;
    bias(a.stack, a.q_bias, layer, q);
    bias(a.stack, a.k_bias, layer, k);
    bias(a.stack, a.v_bias, layer, v);
    bias(a.stack, a.o_bias, layer, d);
  };
  auto ffn = [&](Stack s, int64_t layer) {
    norm(s, Role::FfnNorm, Role::FfnNormBias, layer);
    if (c.gated_ffn) weight(s, Role::FfnGate, layer, {f, d});
    weight(s, Role::FfnUp, layer, {f, d});
    weight(s, Role::FfnDown, layer, {d, f});
    if (!c.mlp_bias) return;
    if (c.gated_ffn) bias(s, Role::FfnGateBias, layer, f);
    bias(s, Role::FfnUpBias, layer, f);
    bias(s, Role::FfnDownBias, layer, d);
  };

  // Global tensors (T5's encoder and decoder share one embedding, listed once).
  const Stack D = Stack::Decoder, E = Stack::Encoder;
  const int64_t e = c.embedding_width();
  weight(D, Role::TokenEmbedding, 0, {c.vocab_size, e});
  // nn.Embedding(padding_idx = pad_token_id) (Llama, OPT, Qwen2): _init_weights zeroes that row.
  if (spec.zero_padding_row && c.pad_token_id) out.back().init.zero_row = *c.pad_token_id;
  if (spec.positions == Positions::Learned)
    weight(D, Role::PositionEmbedding, 0, {c.max_positions + c.position_offset, d});
  if (e != d) {
    weight(D, Role::EmbedProjIn, 0, {d, e});
    weight(D, Role::EmbedProjOut, 0, {e, d});
  }
  if (!c.tie_word_embeddings) weight(D, Role::LmHead, 0, {c.vocab_size, e});

  struct StackPlan {
    Stack stack;
    AttentionModule self;
    int64_t layers;
  };
  std::vector<StackPlan> stacks;
  if (c.is_encoder_decoder()) stacks.push_back({E, AttentionModule::EncoderSelf, c.n_encoder_layers});
  stacks.push_back({D, AttentionModule::DecoderSelf, c.n_layers});
  for (const StackPlan& p : stacks) {
    if (c.final_norm) norm(p.stack, Role::FinalNorm, Role::FinalNormBias, 0);
    // T5: the relative position bias lives in the first block's self-attention of each stack.
    if (spec.positions == Positions::Relative)
      weight(p.stack, Role::AttnRelativeBias, 0, {c.relative_buckets, c.n_heads});
    for (int64_t layer = 0; layer < p.layers; ++layer) {
      norm(p.stack, Role::AttnNorm, Role::AttnNormBias, layer);
      attention(p.self, layer);
      if (p.stack == D && c.is_encoder_decoder()) {
        out.push_back({D, Role::CrossNorm, layer, {d}, kOnes});
        attention(AttentionModule::DecoderCross, layer);
      }
      ffn(p.stack, layer);
    }
  }
  return out;
}

// A tensor as the checkpoint stores it.
struct StoredTensor {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    return n;
  }
};

// Names the roles through the arch table: Conv1D weights are stored [in, out], GPT-2's fused
// c_attn concatenates the q/k/v parts along its output dimension, and a role that two stacks
// share (T5's embedding) is one tensor.
std::vector<StoredTensor> stored_tensors(const ModelConfig& c) {
  struct Part {
    int fused_part;
    bool conv1d;
    std::vector<int64_t> shape;  // stored layout
  };
  std::vector<StoredTensor> out;
  std::map<std::string, std::vector<Part>> parts;
  std::map<std::string, size_t> index;
  for (const RoleTensor& t : initial_roles(c)) {
    const auto loc = locate(c, t.stack, t.role, t.layer);
    if (!loc)
      throw std::logic_error(std::string("no tensor name for role ") + role_name(t.role) + " in " +
                             family_name(c.family));
    std::vector<int64_t> shape = t.shape;
    if (loc->conv1d && shape.size() == 2) std::swap(shape[0], shape[1]);
    auto [it, fresh] = index.emplace(loc->name, out.size());
    if (fresh) out.push_back({loc->name, shape, t.init});
    StoredTensor& s = out[it->second];
    if (!(s.init == t.init)) throw std::logic_error("parts of " + loc->name + " are initialised differently");
    if (loc->fused_part >= 0) {
      parts[loc->name].push_back({loc->fused_part, loc->conv1d, shape});
    } else if (!fresh && s.shape != shape) {
      throw std::logic_error("roles sharing " + loc->name + " disagree on its shape");
    }
  }
  // Fused tensors: the parts side by side along the output dimension (the last one when stored
  // transposed, as Conv1D is; the first otherwise).
  for (auto& [name, ps] : parts) {
    std::sort(ps.begin(), ps.end(), [](const Part& a, const Part& b) { return a.fused_part < b.fused_part; });
    StoredTensor& s = out[index.at(name)];
    const size_t axis = ps.front().shape.size() == 2 && ps.front().conv1d ? 1 : 0;
    s.shape = ps.front().shape;
    s.shape[axis] = 0;
    for (const Part& p : ps) s.shape[axis] += p.shape[axis];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Seeded normal numbers, identical on every platform: std::mt19937_64's output sequence is fixed
// by the standard (std::normal_distribution's algorithm is not), and Box-Muller uses only
// log/sqrt/cos/sin, whose double results agree far below float32 precision.

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : gen_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 6.283185307179586476925286766559 * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }  // [0, 1) on 53 bits
  std::mt19937_64 gen_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Writes a tensor's float32 bytes; every tensor has its own stream (seed + name), so the files do
// not depend on the order the writer fills them in.
void fill_tensor(const StoredTensor& t, uint64_t seed, uint8_t* dst) {
  const int64_t n = t.numel();
  const int64_t row = t.shape.size() == 2 ? t.shape[1] : n;
  Gaussian gauss(splitmix64(seed ^ splitmix64(fnv1a(t.name))));
  std::vector<float> chunk(size_t(std::min<int64_t>(n, 1 << 16)));
  for (int64_t begin = 0; begin < n; begin += int64_t(chunk.size())) {
    const int64_t count = std::min<int64_t>(int64_t(chunk.size()), n - begin);
    for (int64_t i = 0; i < count; ++i) {
      switch (t.init.kind) {
        case Init::Kind::Ones: chunk[size_t(i)] = 1.0f; break;
        case Init::Kind::Zeros: chunk[size_t(i)] = 0.0f; break;
        case Init::Kind::Normal: {
          const float x = float(t.init.std * gauss.next());
          chunk[size_t(i)] = t.init.zero_row && (begin + i) / row == *t.init.zero_row ? 0.0f : x;
          break;
        }
      }
    }
    from_float32(DType::F32, chunk.data(), count, dst + begin * int64_t(sizeof(float)));
  }
}

ModelConfig config_of(const ModelShape& shape) { return parse_config(make_config(shape), "<model shape>"); }

}  // namespace

// ---------------------------------------------------------------------------------------------

void validate_model_shape(const ModelShape& s, const std::string& source) {
  auto positive = [&](const char* key, int64_t v, int64_t max = kMaxSize) {
    if (v <= 0 || v > max)
      throw InputError(source, key,
                       "expected a positive integer up to " + std::to_string(max) + ", got " + std::to_string(v));
  };
  auto zero_or_positive = [&](const char* key, int64_t v, int64_t max = kMaxSize) {
    if (v != 0) positive(key, v, max);
  };
  const char* family = family_name(s.family);
  positive("layers", s.n_layers, kMaxCount);
  zero_or_positive("encoder_layers", s.n_encoder_layers, kMaxCount);
  const FamilySpec& spec = family_spec(s.family);
  if (s.n_encoder_layers != 0 && !spec.encoder_decoder)
    throw InputError(source, "encoder_layers", std::string("only t5 has an encoder (family is ") + family + ")");
  positive("d_model", s.d_model);
  positive("heads", s.n_heads, kMaxCount);
  zero_or_positive("head_dim", s.head_dim);
  if (s.head_dim == 0 && s.d_model % s.n_heads != 0)
    throw InputError(source, "heads",
                     "d_model " + std::to_string(s.d_model) + " is not divisible by " + std::to_string(s.n_heads) +
                         " heads" + (spec.free_head_dim ? " (or give head_dim)" : ""));
  if (s.head_dim != 0 && !spec.free_head_dim && s.head_dim * s.n_heads != s.d_model)
    throw InputError(source, "head_dim",
                     std::string(family) + " heads are d_model / heads wide; " + std::to_string(s.head_dim) + " x " +
                         std::to_string(s.n_heads) + " heads != d_model " + std::to_string(s.d_model));
  const int64_t hd = head_dim_of(s);
  if (s.kv_heads) {
    if (*s.kv_heads <= 0 || *s.kv_heads > s.n_heads)
      throw InputError(source, "kv_heads",
                       "expected 1 to heads (" + std::to_string(s.n_heads) + "), got " + std::to_string(*s.kv_heads));
    if (!s.group_map && s.n_heads % *s.kv_heads != 0)
      throw InputError(source, "kv_heads",
                       std::to_string(*s.kv_heads) + " does not divide heads (" + std::to_string(s.n_heads) +
                           "); give group_map for uneven groups");
  }
  if (s.group_map) {
    validate_group_map(*s.group_map, int(s.n_heads), source, "group_map");
    if (s.kv_heads && kv_heads_of(s) != *s.kv_heads)
      throw InputError(
          source, "group_map",
          "uses " + std::to_string(kv_heads_of(s)) + " KV heads but kv_heads is " + std::to_string(*s.kv_heads));
  }
  for (const auto& [key, dim] :
       {std::pair<const char*, std::optional<int>>{"qk_head_dim", s.qk_head_dim}, {"v_head_dim", s.v_head_dim}})
    if (dim && (*dim <= 0 || *dim > hd))
      throw InputError(source, key,
                       "expected 1 to the head size (" + std::to_string(hd) + "), got " + std::to_string(*dim));
  // Found by tests/fuzz/fuzz_config (twice): an odd head size, from d_model / heads or as head_dim
  // beside an even qk_head_dim, passed here and made a config.json that load_config refuses.
  // Rotary embeddings turn pairs of the head's dims, and a smaller q/k head keeps some of the pairs.
  if (spec.positions == Positions::Rotary)
    for (const auto& [key, size] : {std::pair<const char*, int64_t>{s.head_dim ? "head_dim" : "heads", hd},
                                    {"qk_head_dim", s.qk_head_dim.value_or(int(hd))}})
      if (size % 2 != 0)
        throw InputError(source, key,
                         "the query/key head size " + std::to_string(size) +
                             " must be even: rotary embeddings turn pairs of dimensions");
  zero_or_positive("ffn_dim", s.ffn_dim);
  if (s.vocab_size == 0) throw InputError(source, "vocab_size", "missing (the tokenizer's vocabulary size)");
  positive("vocab_size", s.vocab_size);
  positive("max_positions", s.max_positions);
  if (!s.activation.empty()) {
    std::string base = s.activation;
    const bool by_activation = spec.feed_forward == FeedForwardKind::ByActivation;
    if (by_activation && base.rfind("gated-", 0) == 0) base = base.substr(6);
    if (std::find(std::begin(kActivations), std::end(kActivations), base) == std::end(kActivations)) {
      std::string names;
      for (const char* a : kActivations) names += std::string(names.empty() ? "" : ", ") + a;
      throw InputError(source, "activation",
                       "unsupported '" + s.activation + "' (expected one of " + names +
                           (by_activation ? "; " + std::string(family) + " also gated-<one of them>)" : ")"));
    }
  }
  if (s.window_size) {
    if (s.family != Family::GPTNeo)  // the one family whose fresh config alternates local layers
      throw InputError(source, "window_size",
                       std::string("only gpt_neo has local attention (family is ") + family + ")");
    positive("window_size", *s.window_size);
  }
  for (const auto& [key, id] : {std::pair<const char*, std::optional<int64_t>>{"bos_token_id", s.bos_token_id},
                                {"eos_token_id", s.eos_token_id},
                                {"pad_token_id", s.pad_token_id}})
    if (id && (*id < 0 || *id >= s.vocab_size))
      throw InputError(
          source, key,
          "expected a token id below vocab_size (" + std::to_string(s.vocab_size) + "), got " + std::to_string(*id));
}

ModelShape parse_model_shape(const json& j, const std::string& file) {
  if (!j.is_object())
    throw InputError(file, "", "expected a JSON object such as {\"family\": \"llama\", \"vocab_size\": 32000, ...}");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find_if(std::begin(kShapeKeys), std::end(kShapeKeys), [&](const char* k) { return it.key() == k; }) ==
        std::end(kShapeKeys)) {
      std::string names;
      for (const char* k : kShapeKeys) names += std::string(names.empty() ? "" : ", ") + k;
      throw InputError(file, it.key(), "unknown key (expected one of: " + names + ")");
    }
  ShapeReader r(j, file);
  ModelShape s;
  if (!r.has("family")) throw InputError(file, "family", "missing (expected " + family_names() + ")");
  const std::string family = r.string("family");
  const FamilySpec* spec = find_family(family);
  if (!spec) throw InputError(file, "family", "unsupported '" + family + "' (expected " + family_names() + ")");
  s.family = spec->family;

  // Integers are range-checked by validate_model_shape; here only their type, and that int-sized
  // fields fit (rather than wrap).
  auto int_sized = [&](const char* key) {
    const int64_t v = r.integer(key);
    if (v <= 0 || v > kMaxSize) throw InputError(file, key, "expected a positive integer, got " + std::to_string(v));
    return int(v);
  };
  if (r.has("layers")) s.n_layers = r.integer("layers");
  if (r.has("encoder_layers")) {
    s.n_encoder_layers = r.integer("encoder_layers");
    if (s.n_encoder_layers == 0) throw InputError(file, "encoder_layers", "expected a positive integer, got 0");
  }
  if (r.has("d_model")) s.d_model = r.integer("d_model");
  if (r.has("heads")) s.n_heads = r.integer("heads");
  if (r.has("head_dim")) {
    s.head_dim = r.integer("head_dim");
    if (s.head_dim == 0) throw InputError(file, "head_dim", "expected a positive integer, got 0");
  }
  if (r.has("kv_heads")) s.kv_heads = int_sized("kv_heads");
  if (r.has("group_map")) s.group_map = r.int_list("group_map");
  if (r.has("qk_head_dim")) s.qk_head_dim = int_sized("qk_head_dim");
  if (r.has("v_head_dim")) s.v_head_dim = int_sized("v_head_dim");
  if (r.has("ffn_dim")) {
    s.ffn_dim = r.integer("ffn_dim");
    if (s.ffn_dim == 0) throw InputError(file, "ffn_dim", "expected a positive integer, got 0");
  }
  if (!r.has("vocab_size")) throw InputError(file, "vocab_size", "missing (the tokenizer's vocabulary size)");
  s.vocab_size = r.integer("vocab_size");
  if (s.vocab_size == 0) throw InputError(file, "vocab_size", "expected a positive integer, got 0");
  if (r.has("max_positions")) {
    if (spec->positions == Positions::Relative)
      throw InputError(file, "max_positions", "t5 has relative positions and no position limit; leave it out");
    s.max_positions = r.integer("max_positions");
  }
  if (r.has("activation")) s.activation = r.string("activation");
  if (r.has("window_size")) s.window_size = r.integer("window_size");
  if (r.has("bos_token_id")) s.bos_token_id = r.integer("bos_token_id");
  if (r.has("eos_token_id")) s.eos_token_id = r.integer("eos_token_id");
  if (r.has("pad_token_id")) s.pad_token_id = r.integer("pad_token_id");
  validate_model_shape(s, file);
  return s;
}

int64_t default_ffn_dim(const ModelShape& s) {
  if (!gated_ffn(s)) return 4 * s.d_model;
  const int64_t two_thirds_of_4d = (8 * s.d_model + 2) / 3;  // ceil(8d/3)
  return (two_thirds_of_4d + 63) / 64 * 64;
}

json make_config(const ModelShape& s) {
  validate_model_shape(s, "<model shape>");
  const int64_t hd = head_dim_of(s), ffn = s.ffn_dim > 0 ? s.ffn_dim : default_ffn_dim(s);
  const std::string act = activation_of(s);
  const FamilySpec& spec = family_spec(s.family);
  json j = spec.fresh_config(s, FreshSizes{hd, ffn, act});
  j["model_type"] = spec.model_type;
  j["architectures"] = {spec.architecture};
  add_token_ids(j, s);

  // Grouped-attention fields (README, "Grouped-attention fields") through their one writer: the
  // decoder's self-attention (and T5's cross-attention, the KV caches) get the intended layout.
  const AttentionLayout want = intended_layout(s);
  ModelConfig fresh = parse_config(j, "<model shape>");
  for (AttentionModule m : fresh.modules())
    if (m != AttentionModule::EncoderSelf) fresh.layouts[m].assign(fresh.layouts[m].size(), want);
  // Partial rotary (GPT-NeoX): smaller q/k heads keep every rotary dim and drop pass-through ones.
  if (fresh.rotary_dim > 0 && want.head_dim_qk < fresh.rotary_dim)
    throw InputError("<model shape>", "qk_head_dim",
                     std::to_string(want.head_dim_qk) + " is below the " + std::to_string(fresh.rotary_dim) +
                         " rotary dims of each head");
  if (spec.positions == Positions::Rotary && fresh.rotary_dim == 0 && want.head_dim_qk != hd) {
    // Fewer rotary pairs than the head size has: evenly spaced ones, which for a stride of
    // (hd / qk) are exactly the frequencies RoPE would give a head of qk dims.
    const int pairs = int(hd / 2), kept = want.head_dim_qk / 2;
    for (int i = 0; i < kept; ++i) fresh.rope_pairs.push_back(int(int64_t(i) * pairs / kept));
  }
  j = with_layout_fields(fresh);
  return j;
}

int64_t parameter_count(const ModelShape& shape) { return parameter_count(config_of(shape)); }

int64_t parameter_count(const ModelConfig& config) {
  int64_t n = 0;
  for (const StoredTensor& t : stored_tensors(config)) n += t.numel();
  return n;
}

int64_t ffn_dim_matching(ModelShape shape, int64_t target) {
  // The count is affine in the FFN width: a + b * ffn.
  auto count = [&](int64_t ffn) {
    shape.ffn_dim = ffn;
    return parameter_count(shape);
  };
  const int64_t c1 = count(1), per_unit = count(2) - c1, fixed = c1 - per_unit;
  const int64_t guess = std::max<int64_t>(1, int64_t(std::llround(double(target - fixed) / double(per_unit))));
  int64_t best = guess;
  for (int64_t f : {guess - 1, guess + 1})
    if (f >= 1 && std::llabs(fixed + per_unit * f - target) < std::llabs(fixed + per_unit * best - target)) best = f;
  return best;
}

void write_initial_checkpoint(const ModelShape& shape, const std::string& out_dir, uint64_t seed, bool overwrite) {
  json config = make_config(shape);
  config["gqa_init"] = {{"seed", seed}};
  const ModelConfig cfg = parse_config(config, out_dir + "/config.json");
  CheckpointWriter writer(out_dir, overwrite);
  writer.set_config(config);
  for (StoredTensor& t : stored_tensors(cfg)) {
    TensorToWrite w;
    w.name = t.name;
    w.dtype = DType::F32;
    w.shape = t.shape;
    w.nbytes = size_t(t.numel()) * sizeof(float);
    w.fill = [t = std::move(t), seed](uint8_t* dst) { fill_tensor(t, seed, dst); };
    writer.add(std::move(w));
  }
  writer.commit();
}

}  // namespace gqa
