// Fresh models for `gqa train` (core/init_model): the shape JSON and its errors, the config.json of
// every family (layouts read back by parse_config: MHA, even, uneven and KQV), parameter counts
// (closed form, the written checkpoint, transformers), FFN matching, the written tensors (names via
// the arch table, GPT-2's fused Conv1D, init statistics), determinism, and transformers loading
// the folders (tests/oracle/check_init.py).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/arch.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/files.h"
#include "core/init_model.h"
#include "tests/test_util.h"

namespace {

using gqa::AttentionLayout;
using gqa::AttentionModule;
using gqa::Checkpoint;
using gqa::Family;
using gqa::InputError;
using gqa::ModelConfig;
using gqa::ModelShape;
using gqa::Role;
using gqa::Stack;
using gqa::test::read_text;
using gqa::test::TempDir;
using json = nlohmann::json;

const std::string kFile = "shape.json";

ModelShape shape(Family f, int64_t d_model = 64, int64_t heads = 4, int64_t layers = 2) {
  ModelShape s;
  s.family = f;
  s.d_model = d_model;
  s.n_heads = heads;
  s.n_layers = layers;
  s.vocab_size = 512;
  s.max_positions = 128;
  return s;
}

const Family kFamilies[] = {Family::GPT2,    Family::GPTNeo, Family::Llama, Family::T5,
                            Family::GPTNeoX, Family::OPT,    Family::Qwen2};

std::vector<float> values(const Checkpoint& ckpt, const std::string& name) {
  const gqa::TensorView& t = ckpt.tensor(name);
  EXPECT_EQ(t.dtype, gqa::DType::F32) << name;
  std::vector<float> v(size_t(t.numel()));
  gqa::to_float32(t.dtype, t.data, t.numel(), v.data());
  return v;
}

struct Moments {
  double mean = 0, std = 0;
};
Moments moments(const std::vector<float>& v) {
  Moments m;
  for (float x : v) m.mean += x;
  m.mean /= double(v.size());
  for (float x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(m.std / double(v.size() - 1));
  return m;
}

// ---------------------------------------------------------------------------------------------
// The shape JSON

TEST(ModelShape, ParsesEveryKey) {
  const json j = {{"family", "t5"},
                  {"layers", 3},
                  {"encoder_layers", 5},
                  {"d_model", 96},
                  {"heads", 6},
                  {"head_dim", 20},
                  {"kv_heads", 3},
                  {"group_map", {0, 0, 0, 1, 1, 2}},
                  {"qk_head_dim", 8},
                  {"v_head_dim", 12},
                  {"ffn_dim", 200},
                  {"vocab_size", 1000},
                  {"activation", "gated-gelu"},
                  {"bos_token_id", 2},
                  {"eos_token_id", 1},
                  {"pad_token_id", 0}};
  const ModelShape s = gqa::parse_model_shape(j, kFile);
  EXPECT_EQ(s.family, Family::T5);
  EXPECT_EQ(s.n_layers, 3);
  EXPECT_EQ(s.n_encoder_layers, 5);
  EXPECT_EQ(s.d_model, 96);
  EXPECT_EQ(s.n_heads, 6);
  EXPECT_EQ(s.head_dim, 20);
  EXPECT_EQ(s.kv_heads, 3);
  EXPECT_EQ(*s.group_map, (std::vector<int>{0, 0, 0, 1, 1, 2}));
  EXPECT_EQ(s.qk_head_dim, 8);
  EXPECT_EQ(s.v_head_dim, 12);
  EXPECT_EQ(s.ffn_dim, 200);
  EXPECT_EQ(s.vocab_size, 1000);
  EXPECT_EQ(s.activation, "gated-gelu");
  EXPECT_EQ(s.bos_token_id, 2);
  EXPECT_EQ(s.eos_token_id, 1);
  EXPECT_EQ(s.pad_token_id, 0);

  const ModelShape neo = gqa::parse_model_shape({{"family", "gpt_neo"},
                                                 {"vocab_size", 50},
                                                 {"max_positions", 77},
                                                 {"window_size", 16},
                                                 {"pad_token_id", nullptr}},
                                                kFile);
  EXPECT_EQ(neo.family, Family::GPTNeo);
  EXPECT_EQ(neo.max_positions, 77);
  EXPECT_EQ(neo.window_size, 16);
  EXPECT_FALSE(neo.pad_token_id);
  // Defaults are ModelShape's.
  EXPECT_EQ(neo.n_layers, ModelShape().n_layers);
  EXPECT_EQ(neo.d_model, ModelShape().d_model);
  EXPECT_FALSE(neo.kv_heads);
}

// parse_model_shape must throw InputError naming kFile and exactly `key`.
::testing::AssertionResult Rejects(const json& j, const std::string& key) {
  try {
    gqa::parse_model_shape(j, kFile);
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (e.file() != kFile || e.field() != key || what.find(key) == std::string::npos)
      return ::testing::AssertionFailure()
             << "wrong error for " << j.dump() << ": field '" << e.field() << "': " << what;
    return ::testing::AssertionSuccess() << what;
  }
  return ::testing::AssertionFailure() << "accepted " << j.dump();
}

TEST(ModelShape, BadShapesNameTheKey) {
  auto with = [](json extra) {
    json j = {{"family", "llama"}, {"vocab_size", 100}, {"d_model", 64}, {"heads", 4}};
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = *it;
    return j;
  };
  EXPECT_TRUE(Rejects(with({{"layerz", 2}}), "layerz"));
  EXPECT_TRUE(Rejects(with({{"layers", "4"}}), "layers"));
  EXPECT_TRUE(Rejects(with({{"layers", 2.5}}), "layers"));
  EXPECT_TRUE(Rejects(with({{"layers", true}}), "layers"));
  EXPECT_TRUE(Rejects(with({{"layers", 0}}), "layers"));
  EXPECT_TRUE(Rejects(with({{"layers", 100000000}}), "layers"));  // a typo, not an endless allocation
  EXPECT_TRUE(Rejects(with({{"vocab_size", int64_t(1) << 40}}), "vocab_size"));
  EXPECT_TRUE(Rejects(with({{"d_model", -64}}), "d_model"));
  EXPECT_TRUE(Rejects(with({{"d_model", 66}}), "heads"));  // 66 / 4 heads
  EXPECT_TRUE(Rejects(with({{"heads", 0}}), "heads"));
  EXPECT_TRUE(Rejects(with({{"kv_heads", 3}}), "kv_heads"));  // does not divide 4
  EXPECT_TRUE(Rejects(with({{"kv_heads", 5}}), "kv_heads"));
  EXPECT_TRUE(Rejects(with({{"kv_heads", 0}}), "kv_heads"));
  EXPECT_TRUE(Rejects(with({{"group_map", {0, 0, 2, 2}}}), "group_map"));  // KV head 1 unused
  EXPECT_TRUE(Rejects(with({{"group_map", {0, 0, 1}}}), "group_map"));     // one per query head
  EXPECT_TRUE(Rejects(with({{"group_map", {0, -1, 1, 1}}}), "group_map"));
  EXPECT_TRUE(Rejects(with({{"group_map", "0,0,1,1"}}), "group_map"));
  EXPECT_TRUE(Rejects(with({{"group_map", {0, 0, 0, 1}}, {"kv_heads", 3}}), "group_map"));
  EXPECT_TRUE(Rejects(with({{"qk_head_dim", 17}}), "qk_head_dim"));  // head size is 16
  EXPECT_TRUE(Rejects(with({{"qk_head_dim", 7}}), "qk_head_dim"));   // odd with RoPE
  EXPECT_TRUE(Rejects(with({{"v_head_dim", 0}}), "v_head_dim"));
  EXPECT_TRUE(Rejects(with({{"ffn_dim", 0}}), "ffn_dim"));
  EXPECT_TRUE(Rejects(with({{"vocab_size", 0}}), "vocab_size"));
  EXPECT_TRUE(Rejects(with({{"max_positions", -1}}), "max_positions"));
  EXPECT_TRUE(Rejects(with({{"activation", "tanh"}}), "activation"));
  EXPECT_TRUE(Rejects(with({{"activation", "gated-gelu"}}), "activation"));  // gated-* is T5's spelling
  EXPECT_TRUE(Rejects(with({{"window_size", 8}}), "window_size"));           // only GPT-Neo
  EXPECT_TRUE(Rejects(with({{"encoder_layers", 2}}), "encoder_layers"));     // only T5
  EXPECT_TRUE(Rejects(with({{"bos_token_id", 100}}), "bos_token_id"));       // outside the vocabulary
  EXPECT_TRUE(Rejects(with({{"pad_token_id", -1}}), "pad_token_id"));
  EXPECT_TRUE(Rejects(with({{"family", "bert"}}), "family"));
  EXPECT_TRUE(Rejects({{"vocab_size", 100}}, "family"));
  EXPECT_TRUE(Rejects({{"family", "gpt2"}}, "vocab_size"));
  EXPECT_TRUE(Rejects({{"family", "gpt2"}, {"vocab_size", 100}, {"head_dim", 32}}, "head_dim"));  // GPT-2: d/heads
  EXPECT_TRUE(Rejects({{"family", "t5"}, {"vocab_size", 100}, {"max_positions", 512}}, "max_positions"));
  EXPECT_TRUE(Rejects(json::array({1, 2}), ""));
  // Llama and T5 heads may be wider or narrower than d_model / heads.
  EXPECT_NO_THROW(gqa::parse_model_shape(with({{"d_model", 66}, {"head_dim", 16}}), kFile));
  // Shapes built in code are checked too, by make_config.
  ModelShape s = shape(Family::Llama);
  s.kv_heads = 3;
  EXPECT_THROW(gqa::make_config(s), InputError);
}

// Found by tests/fuzz/fuzz_config: {"family": "llama", "d_model": 92, "v_head_dim": 12} was
// accepted (92 / 4 heads = 23) though the config.json made from it was refused (RoPE needs an even
// query/key head size). The effective size is checked, naming the key it came from.
TEST(ModelShape, FuzzOddRotaryHeadSizeIsRefusedByTheShape) {
  const json base = {{"family", "llama"}, {"vocab_size", 100}, {"d_model", 92}, {"heads", 4}};
  json j = base;
  j["v_head_dim"] = 12;
  EXPECT_TRUE(Rejects(j, "heads"));
  j = base;
  j["head_dim"] = 23;
  EXPECT_TRUE(Rejects(j, "head_dim"));
  j = base;
  j["head_dim"] = 24;
  j["qk_head_dim"] = 7;
  EXPECT_TRUE(Rejects(j, "qk_head_dim"));
  // The second finding: an odd head_dim beside an even qk_head_dim (the pairs come from head_dim).
  j = {{"family", "llama"}, {"vocab_size", 4097}, {"d_model", 96},    {"heads", 6},
       {"kv_heads", 3},     {"head_dim", 17},     {"qk_head_dim", 8}, {"v_head_dim", 12}};
  EXPECT_TRUE(Rejects(j, "head_dim"));
  // Without RoPE an odd size is fine, and every accepted shape's config.json loads.
  for (const char* family : {"gpt2", "gpt_neo", "t5"}) {
    json t = base;
    t["family"] = family;
    const ModelShape ok = gqa::parse_model_shape(t, kFile);
    EXPECT_EQ(gqa::parse_config(gqa::make_config(ok), "config.json").head_dim, 23) << family;
  }
  // The same odd size in a config.json names where it came from.
  try {
    json c = gqa::make_config(
        gqa::parse_model_shape({{"family", "llama"}, {"vocab_size", 100}, {"d_model", 96}, {"heads", 4}}, kFile));
    c["hidden_size"] = 92;
    c.erase("head_dim");
    gqa::parse_config(c, "config.json");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "num_attention_heads") << e.what();
    EXPECT_NE(std::string(e.what()).find("head size 23 must be even"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// config.json

ModelConfig config_of(const ModelShape& s) { return gqa::parse_config(gqa::make_config(s), "config.json"); }

// Every block of the grouped modules has `want`; the others (T5's encoder) are MHA.
void expect_layouts(const ModelShape& s, const AttentionLayout& want) {
  const ModelConfig c = config_of(s);
  const int hd = int(c.head_dim);
  const AttentionLayout mha = AttentionLayout::even(int(s.n_heads), int(s.n_heads), hd, hd);
  for (AttentionModule m : c.modules()) {
    const AttentionLayout& expect = m == AttentionModule::EncoderSelf ? mha : want;
    ASSERT_EQ(c.layouts.at(m).size(), size_t(m == AttentionModule::EncoderSelf ? c.n_encoder_layers : c.n_layers));
    for (const AttentionLayout& l : c.layouts.at(m)) {
      EXPECT_EQ(l.group_of, expect.group_of) << family_name(s.family) << " " << module_name(m);
      EXPECT_EQ(l.n_kv, expect.n_kv);
      EXPECT_EQ(l.head_dim_qk, expect.head_dim_qk);
      EXPECT_EQ(l.head_dim_v, expect.head_dim_v);
    }
  }
}

TEST(MakeConfig, LayoutsReadBackForEveryFamily) {
  for (Family f : kFamilies) {
    SCOPED_TRACE(family_name(f));
    ModelShape s = shape(f, 96, 6);  // head size 16
    expect_layouts(s, AttentionLayout::even(6, 6, 16, 16));
    s.kv_heads = 2;
    expect_layouts(s, AttentionLayout::even(6, 2, 16, 16));
    s.kv_heads.reset();
    s.group_map = std::vector<int>{0, 0, 0, 1, 1, 2};
    AttentionLayout uneven = AttentionLayout::even(6, 3, 16, 16);
    uneven.group_of = {0, 0, 0, 1, 1, 2};
    expect_layouts(s, uneven);
    s.qk_head_dim = 8;
    s.v_head_dim = 12;
    uneven.head_dim_qk = 8;
    uneven.head_dim_v = 12;
    expect_layouts(s, uneven);
    s.group_map.reset();  // KQV alone, MHA groups
    expect_layouts(s, AttentionLayout::even(6, 6, 8, 12));
  }
}

TEST(MakeConfig, FamilyFields) {
  ModelShape g = shape(Family::GPT2);
  const json gj = gqa::make_config(g);
  EXPECT_EQ(gj["model_type"], "gpt2");
  EXPECT_EQ(gj["architectures"], json({"GPT2LMHeadModel"}));
  EXPECT_EQ(gj["n_embd"], 64);
  EXPECT_EQ(gj["n_head"], 4);
  EXPECT_EQ(gj["n_layer"], 2);
  EXPECT_EQ(gj["n_positions"], 128);
  EXPECT_EQ(gj["n_inner"], 256);  // 4 d
  EXPECT_EQ(gj["activation_function"], "gelu_new");
  EXPECT_TRUE(gj["bos_token_id"].is_null());  // not GPT-2's 50256, which a small vocabulary lacks
  EXPECT_FALSE(gj.contains("num_key_value_heads"));
  EXPECT_FALSE(gj.contains("gqa_group_map"));

  ModelShape n = shape(Family::GPTNeo, 64, 4, 5);
  n.window_size = 8;
  const ModelConfig nc = config_of(n);
  EXPECT_EQ(nc.attention_types, (std::vector<std::string>{"global", "local", "global", "local", "global"}));
  EXPECT_EQ(nc.window_size, 8);
  EXPECT_EQ(nc.ffn_dim, 256);
  n.window_size.reset();
  EXPECT_EQ(config_of(n).attention_types, std::vector<std::string>(5, "global"));

  ModelShape l = shape(Family::Llama, 256, 8);
  l.kv_heads = 2;
  l.pad_token_id = 3;
  const json lj = gqa::make_config(l);
  const ModelConfig lc = gqa::parse_config(lj, "config.json");
  EXPECT_EQ(lj["num_key_value_heads"], 2);
  EXPECT_EQ(lj["tie_word_embeddings"], true);
  EXPECT_EQ(lc.ffn_dim, 704);  // ceil(8 * 256 / 3) = 683, up to a multiple of 64
  EXPECT_EQ(lc.activation, "silu");
  EXPECT_TRUE(lc.gated_ffn);
  EXPECT_EQ(lc.rope.type, gqa::RopeType::Default);
  EXPECT_DOUBLE_EQ(lc.rope.theta, 10000.0);
  EXPECT_EQ(lc.max_positions, 128);
  EXPECT_EQ(lc.pad_token_id, 3);
  // q/k heads narrower than the rotary head size keep evenly spaced frequency pairs.
  l.qk_head_dim = 8;  // of 32: 4 of 16 pairs
  EXPECT_EQ(config_of(l).rope_pairs, (std::vector<int>{0, 4, 8, 12}));
  l.ffn_dim = 100;
  EXPECT_EQ(config_of(l).ffn_dim, 100);

  ModelShape t = shape(Family::T5);
  t.n_encoder_layers = 3;
  t.kv_heads = 1;
  const json tj = gqa::make_config(t);
  const ModelConfig tc = gqa::parse_config(tj, "config.json");
  EXPECT_EQ(tj["is_encoder_decoder"], true);
  EXPECT_EQ(tj["architectures"], json({"T5ForConditionalGeneration"}));
  EXPECT_EQ(tj["gqa_modules"], json({"decoder_self", "decoder_cross"}));
  EXPECT_EQ(tc.n_encoder_layers, 3);
  EXPECT_EQ(tc.n_layers, 2);
  EXPECT_EQ(tc.head_dim, 16);
  EXPECT_EQ(tc.ffn_dim, 256);
  EXPECT_FALSE(tc.gated_ffn);
  EXPECT_EQ(tc.activation, "relu");
  EXPECT_EQ(tc.decoder_start_token_id, 0);
  EXPECT_EQ(tc.pad_token_id, 0);
  EXPECT_TRUE(tc.scale_decoder_outputs);
  t.activation = "gated-gelu";
  t.pad_token_id = 5;
  const ModelConfig tg = config_of(t);
  EXPECT_TRUE(tg.gated_ffn);
  EXPECT_EQ(tg.activation, "gelu_new");
  EXPECT_EQ(tg.ffn_dim, 192);  // gated: ceil(8 * 64 / 3) = 171, up to 192
  EXPECT_EQ(tg.decoder_start_token_id, 5);
}

// ---------------------------------------------------------------------------------------------
// Parameter counts

TEST(ParameterCount, ClosedForms) {
  // Llama, tied embeddings: embedding + per layer (q, k, v, o, gate/up/down, two norms) + final norm.
  ModelShape l = shape(Family::Llama, 64, 4, 3);
  l.kv_heads = 2;
  l.ffn_dim = 100;
  const int64_t d = 64, kv = 2 * 16, f = 100, V = 512;
  EXPECT_EQ(gqa::parameter_count(l), V * d + 3 * (2 * d * d + 2 * d * kv + 3 * d * f + 2 * d) + d);
  // GPT-2: wte + wpe + per layer (c_attn + bias, c_proj + bias, MLP + biases, two LayerNorms) + ln_f.
  ModelShape g = shape(Family::GPT2, 64, 4, 2);
  g.kv_heads = 1;
  g.qk_head_dim = 8;
  const int64_t qkv = 4 * 8 + 8 + 16, P = 128, F = 256;
  EXPECT_EQ(gqa::parameter_count(g),
            V * d + P * d + 2 * ((d + 1) * qkv + (d + 1) * d + (d + 1) * F + (F + 1) * d + 4 * d) + 2 * d);
}

// Grouped shapes: the count is what the written checkpoint holds (tied weights once).
TEST(ParameterCount, MatchesTheWrittenCheckpoint) {
  TempDir tmp("gqa-init");
  for (Family f : kFamilies) {
    SCOPED_TRACE(family_name(f));
    ModelShape s = shape(f, 96, 6, 3);
    s.group_map = std::vector<int>{0, 1, 1, 2, 2, 2};
    s.qk_head_dim = 10;
    s.v_head_dim = 6;
    if (f == Family::T5) s.n_encoder_layers = 2;
    const std::string dir = tmp.file(family_name(f));
    gqa::write_initial_checkpoint(s, dir, 1, false);
    const Checkpoint ckpt(dir);
    EXPECT_EQ(ckpt.parameter_count(), gqa::parameter_count(s));
    EXPECT_FALSE(ckpt.has("lm_head.weight"));  // tied in every family's HF save
    // Every attention role loads (GPT-2: cut from the fused Conv1D) with the layout's shape.
    const ModelConfig& c = ckpt.config();
    for (AttentionModule m : c.modules()) {
      const gqa::AttentionRoles a = gqa::attention_roles(m);
      for (int64_t layer = 0; layer < int64_t(c.layouts.at(m).size()); ++layer) {
        const AttentionLayout& l = c.layout(m, layer);
        const int64_t d = c.d_model;
        EXPECT_NO_THROW(gqa::load_role(ckpt, a.stack, a.q, layer, {l.n_q * l.head_dim_qk, d}));
        EXPECT_NO_THROW(gqa::load_role(ckpt, a.stack, a.k, layer, {l.n_kv * l.head_dim_qk, d}));
        EXPECT_NO_THROW(gqa::load_role(ckpt, a.stack, a.v, layer, {l.n_kv * l.head_dim_v, d}));
        EXPECT_NO_THROW(gqa::load_role(ckpt, a.stack, a.o, layer, {d, l.n_q * l.head_dim_v}));
        if (f == Family::GPT2) {
          EXPECT_NO_THROW(gqa::load_role(ckpt, a.stack, Role::AttnVBias, layer, {l.n_kv * l.head_dim_v}));
        }
      }
    }
    if (f == Family::GPT2) {
      // Conv1D layout: [in, out] with q | k | v side by side.
      EXPECT_EQ(ckpt.tensor("transformer.h.0.attn.c_attn.weight").shape,
                (std::vector<int64_t>{96, 6 * 10 + 3 * 10 + 3 * 6}));
      EXPECT_EQ(ckpt.tensor("transformer.h.0.attn.c_proj.weight").shape, (std::vector<int64_t>{6 * 6, 96}));
      EXPECT_EQ(ckpt.tensor("transformer.h.0.mlp.c_fc.weight").shape, (std::vector<int64_t>{96, 384}));
    }
  }
}

TEST(ParameterCount, FfnMatchingEqualisesWithTheMhaReference) {
  for (Family f : kFamilies) {
    SCOPED_TRACE(family_name(f));
    const ModelShape mha = shape(f, 128, 8, 3);
    ModelShape gqa_shape = mha;
    gqa_shape.kv_heads = 1;
    const int64_t target = gqa::parameter_count(mha);
    ASSERT_LT(gqa::parameter_count(gqa_shape), target);
    const int64_t ffn = gqa::ffn_dim_matching(gqa_shape, target);
    EXPECT_GT(ffn, gqa::default_ffn_dim(mha));  // the attention's savings go to the FFN
    gqa_shape.ffn_dim = ffn;
    ModelShape one_more = gqa_shape;
    one_more.ffn_dim = ffn + 1;
    const int64_t per_unit = gqa::parameter_count(one_more) - gqa::parameter_count(gqa_shape);
    EXPECT_LE(std::llabs(gqa::parameter_count(gqa_shape) - target), per_unit / 2);
    // A tiny target clamps to one unit.
    EXPECT_EQ(gqa::ffn_dim_matching(gqa_shape, 1), 1);
  }
}

// ---------------------------------------------------------------------------------------------
// The written tensors

TEST(WriteInitialCheckpoint, DeterministicFromTheSeed) {
  TempDir tmp("gqa-init");
  ModelShape s = shape(Family::GPT2);
  s.kv_heads = 2;
  gqa::write_initial_checkpoint(s, tmp.file("a"), 7, false);
  gqa::write_initial_checkpoint(s, tmp.file("b"), 7, false);
  gqa::write_initial_checkpoint(s, tmp.file("c"), 8, false);
  const std::string a = read_text(tmp.file("a/model.safetensors"));
  ASSERT_GT(a.size(), size_t(4 * gqa::parameter_count(s)));
  EXPECT_TRUE(a == read_text(tmp.file("b/model.safetensors")));
  EXPECT_EQ(read_text(tmp.file("a/config.json")), read_text(tmp.file("b/config.json")));
  EXPECT_FALSE(a == read_text(tmp.file("c/model.safetensors")));
  EXPECT_EQ(json::parse(read_text(tmp.file("c/config.json")))["gqa_init"]["seed"], 8);

  // The stream is fixed (mt19937_64 + Box-Muller), so these values hold on every platform.
  const Checkpoint ckpt(tmp.file("a"));
  const std::vector<float> wte = values(ckpt, "transformer.wte.weight");
  const float expected[4] = {0x1.76321ep-8f, 0x1.20026ap-6f, -0x1.647122p-6f, -0x1.442aeep-8f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(wte[size_t(i)], expected[i]) << i;

  // An existing folder is replaced only when asked, and nothing temporary is left behind.
  EXPECT_THROW(gqa::write_initial_checkpoint(s, tmp.file("c"), 9, false), InputError);
  gqa::write_initial_checkpoint(s, tmp.file("c"), 7, true);
  EXPECT_TRUE(a == read_text(tmp.file("c/model.safetensors")));
  EXPECT_EQ(gqa::files::list_directory(tmp.path).size(), size_t(3));
}

// The empirical std of every weight within 5% of the intended one (tensors large enough for 5%
// to be many standard errors), norms one, biases zero.
void expect_std(const Checkpoint& ckpt, const std::string& name, double want) {
  const std::vector<float> v = values(ckpt, name);
  ASSERT_GE(v.size(), size_t(16384)) << name;  // the std's standard error is then below 0.6%
  const Moments m = moments(v);
  EXPECT_NEAR(m.std, want, 0.05 * want) << name;
  EXPECT_NEAR(m.mean, 0.0, 0.05 * want) << name;
}
void expect_constant(const Checkpoint& ckpt, const std::string& name, float c) {
  for (float x : values(ckpt, name)) ASSERT_EQ(x, c) << name;
}

TEST(WriteInitialCheckpoint, InitialisesAsTransformers) {
  TempDir tmp("gqa-init");
  {
    ModelShape s = shape(Family::GPT2, 256, 4, 6);
    gqa::write_initial_checkpoint(s, tmp.file("gpt2"), 3, false);
    const Checkpoint c(tmp.file("gpt2"));
    expect_std(c, "transformer.wte.weight", 0.02);
    expect_std(c, "transformer.wpe.weight", 0.02);
    expect_std(c, "transformer.h.0.attn.c_attn.weight", 0.02);
    expect_std(c, "transformer.h.5.mlp.c_fc.weight", 0.02);
    expect_std(c, "transformer.h.0.attn.c_proj.weight", 0.02 / std::sqrt(12.0));  // residual projections
    expect_std(c, "transformer.h.3.mlp.c_proj.weight", 0.02 / std::sqrt(12.0));
    expect_constant(c, "transformer.h.2.ln_1.weight", 1.0f);
    expect_constant(c, "transformer.h.2.ln_2.bias", 0.0f);
    expect_constant(c, "transformer.h.2.attn.c_attn.bias", 0.0f);
    expect_constant(c, "transformer.ln_f.weight", 1.0f);
  }
  {
    ModelShape s = shape(Family::Llama, 256, 4, 2);
    s.kv_heads = 2;
    s.pad_token_id = 7;
    gqa::write_initial_checkpoint(s, tmp.file("llama"), 3, false);
    const Checkpoint c(tmp.file("llama"));
    expect_std(c, "model.embed_tokens.weight", 0.02);
    expect_std(c, "model.layers.1.self_attn.q_proj.weight", 0.02);
    expect_std(c, "model.layers.1.self_attn.k_proj.weight", 0.02);
    expect_std(c, "model.layers.0.mlp.down_proj.weight", 0.02);
    expect_constant(c, "model.layers.0.input_layernorm.weight", 1.0f);
    expect_constant(c, "model.norm.weight", 1.0f);
    // nn.Embedding(padding_idx=pad_token_id): the pad row starts at zero, its neighbours do not.
    const std::vector<float> e = values(c, "model.embed_tokens.weight");
    for (int64_t i = 0; i < 256; ++i) ASSERT_EQ(e[size_t(7 * 256 + i)], 0.0f);
    EXPECT_NE(e[size_t(6 * 256)], 0.0f);
    EXPECT_NE(e[size_t(8 * 256)], 0.0f);
  }
  {
    ModelShape s = shape(Family::T5, 256, 4, 2);
    s.head_dim = 32;  // n_heads * d_kv = 128 != d_model
    s.activation = "gated-gelu";
    gqa::write_initial_checkpoint(s, tmp.file("t5"), 3, false);
    const Checkpoint c(tmp.file("t5"));
    const double d = 256, f = double(c.config().ffn_dim);
    expect_std(c, "shared.weight", 1.0);
    expect_std(c, "encoder.block.0.layer.0.SelfAttention.q.weight", 1.0 / std::sqrt(d * 32));
    expect_std(c, "decoder.block.1.layer.1.EncDecAttention.k.weight", 1.0 / std::sqrt(d));
    expect_std(c, "decoder.block.0.layer.0.SelfAttention.v.weight", 1.0 / std::sqrt(d));
    expect_std(c, "encoder.block.1.layer.0.SelfAttention.o.weight", 1.0 / std::sqrt(4.0 * 32));
    expect_std(c, "encoder.block.1.layer.1.DenseReluDense.wi_0.weight", 1.0 / std::sqrt(d));
    expect_std(c, "decoder.block.0.layer.2.DenseReluDense.wi_1.weight", 1.0 / std::sqrt(d));
    expect_std(c, "decoder.block.1.layer.2.DenseReluDense.wo.weight", 1.0 / std::sqrt(f));
    expect_constant(c, "decoder.block.1.layer.1.layer_norm.weight", 1.0f);
    expect_constant(c, "encoder.final_layer_norm.weight", 1.0f);
    // Relative position bias: first block of each stack only, [buckets, heads].
    EXPECT_EQ(c.tensor("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight").shape,
              (std::vector<int64_t>{32, 4}));
    EXPECT_FALSE(c.has("decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
    EXPECT_FALSE(c.has("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"));
    EXPECT_FALSE(c.has("encoder.embed_tokens.weight"));
  }
}

// ---------------------------------------------------------------------------------------------
// transformers loads the folders

bool have_python() {
  const std::string py = GQA_PYTHON;
  return !py.empty() && gqa::files::exists(py);
}

class Transformers : public ::testing::Test {
 protected:
  struct Case {
    std::string name;
    ModelShape shape;
  };
  static std::vector<Case> cases() {
    std::vector<Case> out;
    out.push_back({"gpt2", shape(Family::GPT2)});
    ModelShape neo = shape(Family::GPTNeo, 64, 4, 3);
    neo.window_size = 4;
    out.push_back({"gpt_neo", neo});
    ModelShape llama = shape(Family::Llama, 64, 4, 2);
    llama.pad_token_id = 0;
    llama.bos_token_id = 1;
    llama.eos_token_id = 2;
    out.push_back({"llama", llama});
    ModelShape t5 = shape(Family::T5, 64, 4, 2);
    t5.n_encoder_layers = 3;
    t5.eos_token_id = 1;
    out.push_back({"t5", t5});
    ModelShape t5_gated = shape(Family::T5, 64, 4, 2);
    t5_gated.head_dim = 8;
    t5_gated.activation = "gated-gelu";
    out.push_back({"t5_gated", t5_gated});
    ModelShape grouped = shape(Family::Llama, 64, 4, 2);
    grouped.kv_heads = 2;
    out.push_back({"llama_grouped", grouped});
    out.push_back({"gpt_neox", shape(Family::GPTNeoX)});
    ModelShape opt = shape(Family::OPT);
    opt.pad_token_id = 1;
    out.push_back({"opt", opt});
    ModelShape qwen2 = shape(Family::Qwen2, 64, 4, 2);
    qwen2.kv_heads = 2;
    qwen2.pad_token_id = 0;
    out.push_back({"qwen2_grouped", qwen2});
    return out;
  }
  static void SetUpTestSuite() {
    if (!have_python()) return;
    tmp_ = new TempDir("gqa-init-py");
    std::string args;
    for (const Case& c : cases()) {
      gqa::write_initial_checkpoint(c.shape, tmp_->file(c.name), 11, false);
      args += " '" + tmp_->file(c.name) + "'";
    }
    const std::string out = tmp_->file("check.out");
    const std::string cmd = "'" + std::string(GQA_PYTHON) + "' '" + GQA_SOURCE_DIR + "/tests/oracle/check_init.py'" +
                            args + " > '" + out + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    log_ = new std::string(read_text(out));
    if (rc != 0) return;
    const size_t last = log_->find_last_of('\n', log_->size() - 2);
    report_ = new json(json::parse(log_->substr(last == std::string::npos ? 0 : last + 1)));
  }
  static void TearDownTestSuite() {
    delete report_;
    delete log_;
    delete tmp_;
    report_ = nullptr;
    log_ = nullptr;
    tmp_ = nullptr;
  }
  void SetUp() override {
    if (!have_python()) GTEST_SKIP() << "no Python at '" << GQA_PYTHON << "'";
    ASSERT_NE(report_, nullptr) << "check_init.py failed:\n" << *log_;
  }
  // The report of one case, checked for a clean load and a finite forward pass.
  static const json& loaded(const std::string& name) {
    const json& r = (*report_)[tmp_->file(name)];
    EXPECT_EQ(r["missing"], json::array()) << name;
    EXPECT_EQ(r["unexpected"], json::array()) << name;
    EXPECT_EQ(r["mismatched"], json::array()) << name;
    EXPECT_TRUE(r["logits_finite"].get<bool>()) << name;
    return r;
  }
  static TempDir* tmp_;
  static std::string* log_;
  static json* report_;
};
TempDir* Transformers::tmp_ = nullptr;
std::string* Transformers::log_ = nullptr;
json* Transformers::report_ = nullptr;

// MHA shapes of every family (and a grouped Llama): no missing or unexpected keys, the same
// parameter count, and each tensor's statistics agree with transformers' own initialisation.
TEST_F(Transformers, LoadsWithTheSameCountAndInit) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const json& r = loaded(c.name);
    EXPECT_EQ(r["num_parameters"].get<int64_t>(), gqa::parameter_count(c.shape));
    EXPECT_EQ(r["logits_shape"].back().get<int64_t>(), c.shape.vocab_size);
    ASSERT_FALSE(r["tensors"].empty());
    for (auto it = r["tensors"].begin(); it != r["tensors"].end(); ++it) {
      const json& ours = (*it)["ours"];
      const json& hf = (*it)["hf"];
      ASSERT_FALSE(hf.is_null()) << it.key() << " is not in transformers' state dict";
      const double hf_std = hf["std"].get<double>(), our_std = ours["std"].get<double>();
      if (hf_std == 0) {  // constant: norms and biases
        EXPECT_EQ(our_std, 0.0) << it.key();
        EXPECT_EQ(ours["mean"].get<double>(), hf["mean"].get<double>()) << it.key();
      } else if (ours["numel"].get<int64_t>() >= 4096) {  // both stds within ~2% of the truth
        EXPECT_NEAR(our_std / hf_std, 1.0, 0.08) << it.key() << ": ours " << our_std << ", transformers " << hf_std;
      } else {
        EXPECT_NEAR(our_std / hf_std, 1.0, 0.5) << it.key() << ": ours " << our_std << ", transformers " << hf_std;
      }
    }
  }
}

}  // namespace
