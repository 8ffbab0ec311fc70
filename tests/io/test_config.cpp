// config.json parsing: every family, attention layouts (num_key_value_heads, gqa_group_map,
// reduced head dims, per-layer overrides, T5 modules), rope variants, GPT-Neo attention types, and
// every kind of bad field (InputError naming config.json and the field).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using gqa::AttentionLayout;
using gqa::AttentionModule;
using gqa::Family;
using gqa::InputError;
using gqa::ModelConfig;
using gqa::RopeType;
using json = nlohmann::json;
using gqa::test::read_text;
using gqa::test::write_text;

struct TempDir : gqa::test::TempDirWithPath<fs::path> {
  TempDir() : TempDirWithPath("gqa-io-cfg") {}
};

const std::string kPath = "some/model/config.json";

json gpt2() {
  return {{"model_type", "gpt2"}, {"vocab_size", 100}, {"n_embd", 64},
          {"n_layer", 2},         {"n_head", 4},       {"n_positions", 32}};
}
json neo() {
  return {{"model_type", "gpt_neo"},
          {"vocab_size", 100},
          {"hidden_size", 64},
          {"num_layers", 4},
          {"num_heads", 4},
          {"max_position_embeddings", 32},
          {"attention_types", json::parse(R"([[["global","local"],2]])")},
          {"window_size", 5}};
}
json t5() {
  return {{"model_type", "t5"},
          {"vocab_size", 100},
          {"d_model", 64},
          {"d_kv", 16},
          {"num_heads", 4},
          {"num_layers", 2},
          {"num_decoder_layers", 3},
          {"d_ff", 128},
          {"relative_attention_num_buckets", 32},
          {"relative_attention_max_distance", 128},
          {"feed_forward_proj", "gated-gelu"},
          {"tie_word_embeddings", false},
          {"decoder_start_token_id", 0},
          {"pad_token_id", 0},
          {"eos_token_id", 1}};
}
json llama() {
  return {{"model_type", "llama"},    {"vocab_size", 100},
          {"hidden_size", 64},        {"num_hidden_layers", 2},
          {"num_attention_heads", 8}, {"num_key_value_heads", 2},
          {"intermediate_size", 128}, {"max_position_embeddings", 128}};
}

ModelConfig parse(const json& j) { return gqa::parse_config(j, kPath); }

// parse_config must throw InputError naming kPath and exactly `field`, and mention `words`.
::testing::AssertionResult Rejects(const json& j, const std::string& field, const std::string& words = "") {
  try {
    parse(j);
    return ::testing::AssertionFailure() << "accepted " << j.dump();
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (e.file() != kPath) return ::testing::AssertionFailure() << "names file '" << e.file() << "': " << what;
    if (e.field() != field)
      return ::testing::AssertionFailure() << "names field '" << e.field() << "', expected '" << field << "': " << what;
    if (what.find(kPath) == std::string::npos || what.find(field) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks file or field: " << what;
    if (!words.empty() && what.find(words) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << words << "': " << what;
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-InputError: " << e.what();
  }
}

json with(json j, const std::string& key, const json& value) {
  j[key] = value;
  return j;
}
json without(json j, const std::string& key) {
  j.erase(key);
  return j;
}

// ---------------------------------------------------------------------------------------------
// Families

TEST(Config, Gpt2) {
  auto c = parse(gpt2());
  EXPECT_EQ(c.family, Family::GPT2);
  EXPECT_STREQ(gqa::family_name(c.family), "gpt2");
  EXPECT_EQ(c.path, kPath);
  EXPECT_EQ(c.vocab_size, 100);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.ffn_dim, 256);
  EXPECT_EQ(c.max_positions, 32);
  EXPECT_EQ(c.activation, "gelu_new");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope.type, RopeType::None);
  EXPECT_EQ(c.modules(), std::vector<AttentionModule>{AttentionModule::DecoderSelf});
  ASSERT_EQ(c.layouts.at(AttentionModule::DecoderSelf).size(), 2u);
  const auto& l = c.layout(AttentionModule::DecoderSelf, 1);
  EXPECT_TRUE(l.is_mha());
  EXPECT_EQ(l.head_dim_qk, 16);
  EXPECT_EQ(l.head_dim_v, 16);
  EXPECT_EQ(l.describe(), "4q/4kv [1,1,1,1] qk16 v16");
  EXPECT_EQ(c.raw, gpt2());
  EXPECT_THROW(parse(with(gpt2(), "add_cross_attention", true)), InputError);
  EXPECT_EQ(parse(with(gpt2(), "n_inner", 100)).ffn_dim, 100);
}

TEST(Config, GptNeoAttentionTypesExpand) {
  auto c = parse(neo());
  EXPECT_EQ(c.family, Family::GPTNeo);
  EXPECT_EQ(c.attention_types, (std::vector<std::string>{"global", "local", "global", "local"}));
  EXPECT_EQ(c.window_size, 5);
  EXPECT_EQ(c.n_layers, 4);
  auto c2 = parse(with(neo(), "attention_types", json::parse(R"([[["local"],1],[["global","global","local"],1]])")));
  EXPECT_EQ(c2.attention_types, (std::vector<std::string>{"local", "global", "global", "local"}));
  auto c3 = parse(without(neo(), "attention_types"));
  EXPECT_EQ(c3.attention_types, std::vector<std::string>(4, "global"));
  EXPECT_EQ(parse(with(neo(), "intermediate_size", nullptr)).ffn_dim, 256);  // transformers writes null
}

TEST(Config, GptNeoBadAttentionTypes) {
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global","local"],1]])")), "attention_types",
                      "expands to 2"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global","sparse"],2]])")), "attention_types"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", "global"), "attention_types"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([["global",4]])")), "attention_types"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global"],"4"]])")), "attention_types"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global"],-4]])")), "attention_types"));
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global"],1000000000]])")), "attention_types"));
}

TEST(Config, T5) {
  auto c = parse(t5());
  EXPECT_EQ(c.family, Family::T5);
  EXPECT_TRUE(c.is_encoder_decoder());
  EXPECT_EQ(c.n_encoder_layers, 2);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_TRUE(c.gated_ffn);
  EXPECT_EQ(c.activation, "gelu_new");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.scale_decoder_outputs);
  EXPECT_EQ(c.decoder_start_token_id, 0);
  EXPECT_EQ(c.max_positions, 0);
  EXPECT_EQ(c.modules().size(), 3u);
  EXPECT_EQ(c.layouts.at(AttentionModule::EncoderSelf).size(), 2u);
  EXPECT_EQ(c.layouts.at(AttentionModule::DecoderSelf).size(), 3u);
  EXPECT_EQ(c.layouts.at(AttentionModule::DecoderCross).size(), 3u);
  for (auto m : c.modules()) {
    EXPECT_TRUE(c.layout(m, 0).is_mha());
    EXPECT_EQ(c.layout(m, 0).head_dim_qk, 16);  // d_kv, not d_model / heads
  }
  auto v10 = parse(with(without(t5(), "tie_word_embeddings"), "feed_forward_proj", "relu"));
  EXPECT_FALSE(v10.gated_ffn);
  EXPECT_EQ(v10.activation, "relu");
  EXPECT_TRUE(v10.scale_decoder_outputs);
  EXPECT_EQ(parse(without(t5(), "num_decoder_layers")).n_layers, 2);
  EXPECT_EQ(parse(without(t5(), "decoder_start_token_id")).decoder_start_token_id, 0);  // falls back to pad
}

TEST(Config, T5GqaModules) {
  // Default: both decoder attentions take num_key_value_heads, the encoder stays MHA.
  auto c = parse(with(t5(), "num_key_value_heads", 2));
  EXPECT_EQ(c.layout(AttentionModule::EncoderSelf, 1).n_kv, 4);
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 2).n_kv, 2);
  EXPECT_EQ(c.layout(AttentionModule::DecoderCross, 0).n_kv, 2);
  // Explicit list.
  json j = with(t5(), "num_key_value_heads", 2);
  j["gqa_modules"] = {"decoder_self", "encoder_self"};
  auto c2 = parse(j);
  EXPECT_EQ(c2.layout(AttentionModule::EncoderSelf, 0).n_kv, 2);
  EXPECT_EQ(c2.layout(AttentionModule::DecoderSelf, 0).n_kv, 2);
  EXPECT_EQ(c2.layout(AttentionModule::DecoderCross, 0).n_kv, 4);
  EXPECT_TRUE(c2.layout(AttentionModule::DecoderCross, 0).is_mha());
  EXPECT_TRUE(Rejects(with(j, "gqa_modules", json::array({"decoder_self", "cross"})), "gqa_modules"));
  EXPECT_TRUE(Rejects(with(j, "gqa_modules", "decoder_self"), "gqa_modules"));
  EXPECT_TRUE(Rejects(with(j, "gqa_modules", json::array({1})), "gqa_modules"));
  // kv bytes per token count the decoder self-attention only: 3 layers * 2 kv * (16+16) * 2 bytes.
  EXPECT_EQ(c2.kv_bytes_per_token(2), 3 * 2 * 32 * 2);
  // Per-layer override in the cross module.
  json k = t5();
  k["gqa_layers"] = json::parse(R"({"decoder_cross": {"1": {"group_map": [0, 0, 1, 1]}}})");
  auto c3 = parse(k);
  EXPECT_EQ(c3.layout(AttentionModule::DecoderCross, 1).n_kv, 2);
  EXPECT_EQ(c3.layout(AttentionModule::DecoderCross, 0).n_kv, 4);
  k["gqa_layers"] = json::parse(R"({"encoder_self": {"2": {"group_map": [0, 0, 1, 1]}}})");
  EXPECT_TRUE(Rejects(k, "gqa_layers.encoder_self.2", "out of range"));  // encoder has 2 layers
}

TEST(Config, Llama) {
  json j = llama();
  j["eos_token_id"] = {128001, 128009};
  j["bos_token_id"] = 128000;
  auto c = parse(j);
  EXPECT_EQ(c.family, Family::Llama);
  EXPECT_TRUE(c.gated_ffn);
  EXPECT_EQ(c.activation, "silu");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_FALSE(c.pad_token_id.has_value());
  const auto& l = c.layout(AttentionModule::DecoderSelf, 0);
  EXPECT_EQ(l.n_q, 8);
  EXPECT_EQ(l.n_kv, 2);
  EXPECT_EQ(l.group_of, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_TRUE(l.is_contiguous_even());
  EXPECT_FALSE(l.is_mha());
  EXPECT_EQ(l.group_sizes(), (std::vector<int>{4, 4}));
  EXPECT_EQ(l.head_dim_qk, 8);
  EXPECT_EQ(l.describe(), "8q/2kv [4,4] qk8 v8");
  // Explicit head_dim (hidden 96, 6 heads of 12 as the oracle's llama_gqa_h6kv2, or of 24).
  json h = llama();
  h["hidden_size"] = 96;
  h["num_attention_heads"] = 6;
  h["head_dim"] = 24;
  EXPECT_EQ(parse(h).layout(AttentionModule::DecoderSelf, 0).head_dim_qk, 24);
  EXPECT_EQ(parse(with(llama(), "num_key_value_heads", 1)).layout(AttentionModule::DecoderSelf, 1).group_sizes(),
            std::vector<int>{8});
  EXPECT_TRUE(parse(without(llama(), "num_key_value_heads")).layout(AttentionModule::DecoderSelf, 0).is_mha());
  EXPECT_TRUE(parse(with(llama(), "num_key_value_heads", nullptr)).layout(AttentionModule::DecoderSelf, 0).is_mha());
  EXPECT_TRUE(Rejects(with(llama(), "pretraining_tp", 2), "pretraining_tp"));
  EXPECT_TRUE(Rejects(with(llama(), "head_dim", 0), "head_dim"));
}

TEST(Config, LoadFromFolderAndFile) {
  TempDir d;
  { std::ofstream(d.file("config.json")) << llama().dump(2); }
  auto a = gqa::load_config(d.path.string());
  EXPECT_EQ(a.path, d.file("config.json"));
  auto b = gqa::load_config(d.file("config.json"));
  EXPECT_EQ(b.n_layers, 2);
  try {
    gqa::load_config(d.file("nope"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), d.file("nope"));
  }
  fs::create_directory(d.path / "empty");
  try {
    gqa::load_config((d.path / "empty").string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), (d.path / "empty" / "config.json").string());
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
  for (const std::string& text :
       {std::string(""), std::string("{"), std::string("{\"model_type\": llama}"), std::string("\xef\xbb")}) {
    std::ofstream(d.file("config.json"), std::ios::trunc) << text;
    try {
      gqa::load_config(d.path.string());
      FAIL() << text;
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), d.file("config.json"));
      EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
    }
  }
  std::ofstream(d.file("config.json"), std::ios::trunc) << "[1, 2]";
  try {
    gqa::load_config(d.path.string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), d.file("config.json"));
    EXPECT_NE(std::string(e.what()).find("JSON object"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Grouped layouts

TEST(Config, UnevenGroupMap) {
  json j = with(llama(), "num_key_value_heads", 3);
  j["gqa_group_map"] = {0, 0, 0, 1, 1, 1, 2, 2};
  auto c = parse(j);
  for (int layer = 0; layer < 2; ++layer) {
    const auto& l = c.layout(AttentionModule::DecoderSelf, layer);
    EXPECT_EQ(l.n_q, 8);
    EXPECT_EQ(l.n_kv, 3);
    EXPECT_EQ(l.group_of, (std::vector<int>{0, 0, 0, 1, 1, 1, 2, 2}));
    EXPECT_EQ(l.group_sizes(), (std::vector<int>{3, 3, 2}));
    EXPECT_FALSE(l.is_contiguous_even());
    EXPECT_FALSE(l.is_mha());
    EXPECT_EQ(l.describe(), "8q/3kv [3,3,2] qk8 v8");
  }
  // Without num_key_value_heads the map alone decides; interleaved groups are fine.
  json k = without(llama(), "num_key_value_heads");
  k["gqa_group_map"] = {0, 1, 0, 1, 0, 1, 0, 1};
  const auto ck = parse(k);
  const auto& l = ck.layout(AttentionModule::DecoderSelf, 0);
  EXPECT_EQ(l.n_kv, 2);
  EXPECT_FALSE(l.is_contiguous_even());
  EXPECT_EQ(l.group_sizes(), (std::vector<int>{4, 4}));
  // An identity map is MHA; a map in head order with equal sizes is contiguous-even.
  k["gqa_group_map"] = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_TRUE(parse(k).layout(AttentionModule::DecoderSelf, 0).is_mha());
  k["gqa_group_map"] = {0, 0, 1, 1, 2, 2, 3, 3};
  EXPECT_TRUE(parse(k).layout(AttentionModule::DecoderSelf, 0).is_contiguous_even());
}

TEST(Config, BadGroupMap) {
  json j = without(llama(), "num_key_value_heads");
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", {0, 0, 1, 1}), "gqa_group_map", "expected one per query head (8)"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", {0, 0, 0, 0, 1, 1, 1, 1, 1}), "gqa_group_map", "9 entries"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", json::array()), "gqa_group_map"));
  EXPECT_TRUE(
      Rejects(with(j, "gqa_group_map", {0, 0, 0, 0, 2, 2, 2, 2}), "gqa_group_map", "KV head 1 has no query heads"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", {1, 1, 1, 1, 2, 2, 2, 2}), "gqa_group_map", "KV head 0"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", {0, 0, 0, 0, -1, -1, 1, 1}), "gqa_group_map"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", {0, 0, 0, 0, 1, 1, 1, 1 << 30}), "gqa_group_map"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", "0,0,0,0,1,1,1,1"), "gqa_group_map", "list"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", 0), "gqa_group_map", "list"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", json::parse("[0,0,0,0,1,1,1,1.0]")), "gqa_group_map"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", json::parse(R"([0,0,0,0,1,1,1,"1"])")), "gqa_group_map"));
  EXPECT_TRUE(Rejects(with(j, "gqa_group_map", json::parse("[0,0,0,0,1,1,1,null]")), "gqa_group_map"));
  // Disagreeing with num_key_value_heads.
  EXPECT_TRUE(
      Rejects(with(llama(), "gqa_group_map", {0, 0, 0, 1, 1, 1, 2, 2}), "gqa_group_map", "num_key_value_heads is 2"));
}

TEST(Config, BadKvHeads) {
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", 3), "num_key_value_heads", "must divide"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", 16), "num_key_value_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", 0), "num_key_value_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", -2), "num_key_value_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", 2.0), "num_key_value_heads", "integer"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", "2"), "num_key_value_heads", "integer"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", true), "num_key_value_heads"));
  // Values that only look valid after truncation to int.
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", (int64_t(1) << 32) + 2), "num_key_value_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "num_key_value_heads", -(int64_t(1) << 32) + 2), "num_key_value_heads"));
}

TEST(Config, ReducedHeadDims) {
  json j = gpt2();
  j["num_key_value_heads"] = 2;
  j["gqa_qk_head_dim"] = 6;
  j["gqa_v_head_dim"] = 5;
  auto c = parse(j);
  const auto& l = c.layout(AttentionModule::DecoderSelf, 0);
  EXPECT_EQ(l.head_dim_qk, 6);
  EXPECT_EQ(l.head_dim_v, 5);
  EXPECT_EQ(l.describe(), "4q/2kv [2,2] qk6 v5");
  EXPECT_EQ(c.kv_bytes_per_token(4), 2 * 2 * (6 + 5) * 4);
  // Rotary embeddings need an even q/k dim.
  json k = llama();
  k["gqa_qk_head_dim"] = 5;
  EXPECT_TRUE(Rejects(k, "gqa_qk_head_dim", "even"));
  k["gqa_qk_head_dim"] = 6;
  k["gqa_v_head_dim"] = 3;  // v has no rope: odd is fine
  EXPECT_EQ(parse(k).layout(AttentionModule::DecoderSelf, 1).head_dim_v, 3);
  EXPECT_TRUE(Rejects(with(gpt2(), "gqa_qk_head_dim", 0), "gqa_qk_head_dim"));
  EXPECT_TRUE(Rejects(with(gpt2(), "gqa_v_head_dim", -1), "gqa_v_head_dim"));
  EXPECT_TRUE(Rejects(with(gpt2(), "gqa_v_head_dim", 4.5), "gqa_v_head_dim"));
}

TEST(Config, PerLayerOverrides) {
  json j = llama();
  j["gqa_layers"] =
      json::parse(R"({"decoder_self": {"1": {"group_map": [0,0,0,0,0,0,0,0], "head_dim_qk": 4, "head_dim_v": 2}}})");
  auto c = parse(j);
  const auto& l0 = c.layout(AttentionModule::DecoderSelf, 0);
  const auto& l1 = c.layout(AttentionModule::DecoderSelf, 1);
  EXPECT_EQ(l0.n_kv, 2);
  EXPECT_EQ(l0.head_dim_qk, 8);
  EXPECT_EQ(l1.n_kv, 1);
  EXPECT_EQ(l1.head_dim_qk, 4);
  EXPECT_EQ(l1.head_dim_v, 2);
  EXPECT_EQ(l1.group_sizes(), std::vector<int>{8});
  // Per-layer KV bytes: 2*(8+8) + 1*(4+2) elements.
  EXPECT_EQ(c.kv_bytes_per_token(4), (2 * 16 + 1 * 6) * 4);
  // Only the head dims.
  j["gqa_layers"] = json::parse(R"({"decoder_self": {"0": {"head_dim_v": 3}}})");
  EXPECT_EQ(parse(j).layout(AttentionModule::DecoderSelf, 0).head_dim_v, 3);
  EXPECT_EQ(parse(j).layout(AttentionModule::DecoderSelf, 0).n_kv, 2);
}

// Latent (MLA) blocks: one shared cache entry of rank + rope dims per token and layer.
TEST(Config, LatentFields) {
  json j = llama();  // 8 heads of 8 dims: 4 rotary pairs
  j["num_key_value_heads"] = 1;
  j["gqa_qk_head_dim"] = 12;
  j["gqa_latent"] = json::parse(R"({"rank": 24, "rope_dims": 4, "rope_pairs": [0, 3]})");
  const ModelConfig c = parse(j);
  const gqa::AttentionLayout& l = c.layout(AttentionModule::DecoderSelf, 1);
  EXPECT_TRUE(l.is_latent());
  EXPECT_EQ(l.latent_rope_pairs, (std::vector<int>{0, 3}));
  EXPECT_EQ(c.kv_bytes_per_token(2), 2 * (24 + 4) * 2);  // 2 layers, bf16
  const auto bad = [&](const char* latent) { return with(j, "gqa_latent", json::parse(latent)); };
  EXPECT_TRUE(Rejects(bad(R"(5)"), "gqa_latent"));
  EXPECT_TRUE(Rejects(bad(R"({"rank": 0})"), "gqa_latent.rank"));
  EXPECT_TRUE(Rejects(bad(R"({"rank": 8, "rope_dims": 3, "rope_pairs": [0]})"), "gqa_latent.rope_dims", "even"));
  EXPECT_TRUE(Rejects(bad(R"({"rank": 8, "rope_dims": 4, "rope_pairs": [0]})"), "gqa_latent.rope_pairs"));
  EXPECT_TRUE(Rejects(bad(R"({"rank": 8, "rope_dims": 2, "rope_pairs": [4]})"), "gqa_latent.rope_pairs", "4 rotary"));
  EXPECT_TRUE(Rejects(with(j, "num_key_value_heads", 2), "gqa_latent", "one KV head"));
  // A layer left out of the conversion says so with "latent": null.
  j["gqa_layers"] = json::parse(R"({"decoder_self": {"0": {"group_map": [0,1,2,3,4,5,6,7], "head_dim_qk": 8,
                                                         "latent": null}}})");
  EXPECT_FALSE(parse(j).layout(AttentionModule::DecoderSelf, 0).is_latent());
  EXPECT_TRUE(parse(j).layout(AttentionModule::DecoderSelf, 1).is_latent());
}

TEST(Config, BadPerLayerOverrides) {
  auto layers = [](const char* text) { return with(llama(), "gqa_layers", json::parse(text)); };
  EXPECT_TRUE(Rejects(layers(R"([1,2])"), "gqa_layers"));
  EXPECT_TRUE(Rejects(layers(R"({"encoder_self": {"0": {}}})"), "gqa_layers.encoder_self", "unknown module"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_cross": {"0": {}}})"), "gqa_layers.decoder_cross"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": [1]})"), "gqa_layers.decoder_self"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"2": {}}})"), "gqa_layers.decoder_self.2", "out of range"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"x": {}}})"), "gqa_layers.decoder_self.x", "not a number"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"-1": {}}})"), "gqa_layers.decoder_self.-1"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"1x": {}}})"), "gqa_layers.decoder_self.1x"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"": {}}})"), "gqa_layers.decoder_self."));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": 5}})"), "gqa_layers.decoder_self.0"));
  EXPECT_TRUE(
      Rejects(layers(R"({"decoder_self": {"0": {"group_map": [0,0,1,1]}}})"), "gqa_layers.decoder_self.0.group_map"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": {"group_map": [0,0,0,0,2,2,2,2]}}})"),
                      "gqa_layers.decoder_self.0.group_map"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": {"head_dim_qk": 0}}})"), "gqa_layers.decoder_self.0.head_dim_qk",
                      "positive"));
  EXPECT_TRUE(
      Rejects(layers(R"({"decoder_self": {"0": {"head_dim_v": -4}}})"), "gqa_layers.decoder_self.0.head_dim_v"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": {"head_dim_v": 4294967300}}})"),
                      "gqa_layers.decoder_self.0.head_dim_v"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": {"head_dim_qk": "8"}}})"),
                      "gqa_layers.decoder_self.0.head_dim_qk", "integer"));
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"0": {"group_map": [0,0,0,0,1,1,1,"1"]}}})"),
                      "gqa_layers.decoder_self.0.group_map"));
  // Rotary embeddings need an even q/k head dim in every layer.
  EXPECT_TRUE(Rejects(layers(R"({"decoder_self": {"1": {"head_dim_qk": 5}}})"), "gqa_layers.decoder_self.1.head_dim_qk",
                      "even"));
  EXPECT_EQ(parse(with(gpt2(), "gqa_layers", json::parse(R"({"decoder_self": {"1": {"head_dim_qk": 5}}})")))
                .layout(AttentionModule::DecoderSelf, 1)
                .head_dim_qk,
            5);  // no rope: odd is fine
}

TEST(Config, KvBytesPerTokenMhaVsGqa) {
  const auto mha = parse(without(llama(), "num_key_value_heads"));
  const auto gqa2 = parse(llama());
  const auto mqa = parse(with(llama(), "num_key_value_heads", 1));
  json u = with(llama(), "num_key_value_heads", 3);
  u["gqa_group_map"] = {0, 0, 0, 1, 1, 1, 2, 2};
  const auto uneven = parse(u);
  // layers * n_kv * (dqk + dv) * bytes
  EXPECT_EQ(mha.kv_bytes_per_token(4), 2 * 8 * 16 * 4);
  EXPECT_EQ(gqa2.kv_bytes_per_token(4), 2 * 2 * 16 * 4);
  EXPECT_EQ(mqa.kv_bytes_per_token(2), 2 * 1 * 16 * 2);
  EXPECT_EQ(uneven.kv_bytes_per_token(4), 2 * 3 * 16 * 4);
  // Exact ratios n_q / n_kv.
  EXPECT_EQ(mha.kv_bytes_per_token(4), 4 * gqa2.kv_bytes_per_token(4));
  EXPECT_EQ(mha.kv_bytes_per_token(2), 8 * mqa.kv_bytes_per_token(2));
  EXPECT_EQ(3 * mha.kv_bytes_per_token(4), 8 * uneven.kv_bytes_per_token(4));
  EXPECT_EQ(mha.kv_bytes_per_token(4), 2 * mha.kv_bytes_per_token(2));
}

// ---------------------------------------------------------------------------------------------
// Rope

TEST(Config, RopeVariants) {
  // transformers 5: rope_parameters carries rope_theta.
  auto c =
      parse(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"linear","factor":2.0,"rope_theta":500.0})")));
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_EQ(c.rope.factor, 2.0);
  EXPECT_EQ(c.rope.theta, 500.0);
  c = parse(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"default","rope_theta":500000.0})")));
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 500000.0);
  c = parse(with(
      llama(), "rope_parameters",
      json::parse(
          R"({"rope_type":"llama3","factor":8.0,"rope_theta":10000,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":16})")));
  EXPECT_EQ(c.rope.type, RopeType::Llama3);
  EXPECT_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.rope.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope.original_max_positions, 16);
  // transformers 4.x: rope_theta at the top level, rope_scaling with "type" or "rope_type".
  json j = with(llama(), "rope_theta", 250000.0);
  c = parse(with(j, "rope_scaling", json::parse(R"({"type":"linear","factor":4.0})")));
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_EQ(c.rope.factor, 4.0);
  EXPECT_EQ(c.rope.theta, 250000.0);
  c = parse(with(
      j, "rope_scaling",
      json::parse(
          R"({"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})")));
  EXPECT_EQ(c.rope.type, RopeType::Llama3);
  EXPECT_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.original_max_positions, 8192);
  EXPECT_EQ(c.rope.theta, 250000.0);
  c = parse(with(j, "rope_scaling", nullptr));
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 250000.0);
  EXPECT_EQ(parse(with(llama(), "rope_theta", 10)).rope.theta, 10.0);  // an integer theta is a number too
}

TEST(Config, BadRope) {
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"yarn","factor":4.0})")),
                      "rope_parameters.rope_type", "yarn"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_scaling", json::parse(R"({"type":"dynamic","factor":4.0})")),
                      "rope_scaling.rope_type", "dynamic"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_scaling", "linear"), "rope_scaling"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"linear","factor":0})")),
                      "rope_parameters.factor"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"linear","factor":-2})")),
                      "rope_parameters.factor"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters", json::parse(R"({"rope_type":"linear","factor":"2"})")),
                      "rope_parameters.factor", "number"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters", json::parse(R"({"rope_type":7})")), "rope_parameters.rope_type",
                      "string"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_parameters",
                           json::parse(R"({"rope_type":"llama3","original_max_position_embeddings":8192.5})")),
                      "rope_parameters.original_max_position_embeddings"));
  EXPECT_TRUE(Rejects(with(llama(), "rope_theta", "1e4"), "rope_theta"));
}

// ---------------------------------------------------------------------------------------------
// Bad fields

TEST(Config, BadModelType) {
  EXPECT_TRUE(Rejects(with(llama(), "model_type", "bert"), "model_type", "'bert'"));
  EXPECT_TRUE(Rejects(without(llama(), "model_type"), "model_type", "missing"));
  EXPECT_TRUE(Rejects(with(llama(), "model_type", 5), "model_type"));
  EXPECT_TRUE(Rejects(with(llama(), "model_type", ""), "model_type"));
  EXPECT_TRUE(Rejects(with(llama(), "model_type", "Llama"), "model_type"));
  try {
    gqa::parse_config(json::array(), kPath);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), kPath);
  }
}

TEST(Config, BadIntegerFields) {
  EXPECT_TRUE(Rejects(with(llama(), "vocab_size", "100"), "vocab_size", "integer"));
  EXPECT_TRUE(Rejects(with(llama(), "hidden_size", 64.0), "hidden_size", "integer"));
  EXPECT_TRUE(Rejects(with(llama(), "hidden_size", 64.5), "hidden_size"));
  EXPECT_TRUE(Rejects(with(llama(), "num_hidden_layers", 0), "num_hidden_layers", "positive"));
  EXPECT_TRUE(Rejects(with(llama(), "num_hidden_layers", -3), "num_hidden_layers"));
  EXPECT_TRUE(Rejects(with(llama(), "num_attention_heads", int64_t(1) << 40), "num_attention_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "num_attention_heads", int64_t(1) << 31), "num_attention_heads"));
  EXPECT_TRUE(Rejects(with(llama(), "intermediate_size", json::array({128})), "intermediate_size"));
  EXPECT_TRUE(Rejects(without(llama(), "intermediate_size"), "intermediate_size", "missing"));
  EXPECT_TRUE(Rejects(without(gpt2(), "n_embd"), "n_embd", "missing"));
  EXPECT_TRUE(Rejects(with(gpt2(), "n_head", nullptr), "n_head", "missing"));
  EXPECT_TRUE(Rejects(without(neo(), "num_heads"), "num_heads"));
  EXPECT_TRUE(Rejects(without(t5(), "d_kv"), "d_kv"));
  EXPECT_TRUE(Rejects(with(t5(), "relative_attention_num_buckets", 0), "relative_attention_num_buckets"));
  EXPECT_TRUE(Rejects(with(llama(), "eos_token_id", "2"), "eos_token_id"));
  EXPECT_TRUE(Rejects(with(llama(), "eos_token_id", json::array({"2"})), "eos_token_id"));
  EXPECT_TRUE(Rejects(with(llama(), "tie_word_embeddings", 1), "tie_word_embeddings", "true or false"));
  EXPECT_TRUE(Rejects(with(llama(), "rms_norm_eps", "1e-6"), "rms_norm_eps", "number"));
  EXPECT_TRUE(Rejects(with(llama(), "hidden_act", 3), "hidden_act", "string"));
}

TEST(Config, HiddenNotDivisibleByHeads) {
  EXPECT_TRUE(Rejects(with(llama(), "hidden_size", 60), "num_attention_heads", "not divisible"));
  EXPECT_TRUE(Rejects(with(gpt2(), "n_embd", 66), "n_head", "not divisible"));
  EXPECT_TRUE(Rejects(with(neo(), "hidden_size", 62), "num_heads", "not divisible"));
  // With an explicit head_dim Llama does not need hidden % heads == 0.
  json j = with(llama(), "hidden_size", 60);
  j["head_dim"] = 8;
  EXPECT_EQ(parse(j).layout(AttentionModule::DecoderSelf, 0).head_dim_qk, 8);
}

TEST(Config, ValidateGroupMapDirectly) {
  EXPECT_NO_THROW(gqa::validate_group_map({0, 0, 1}, 3, "f", "m"));
  EXPECT_THROW(gqa::validate_group_map({0, 0, 1}, 4, "f", "m"), InputError);
  EXPECT_THROW(gqa::validate_group_map({}, 1, "f", "m"), InputError);
  EXPECT_THROW(gqa::validate_group_map({0, -1, 1}, 3, "f", "m"), InputError);
  EXPECT_THROW(gqa::validate_group_map({-1, -1}, 2, "f", "m"), InputError);
  EXPECT_THROW(gqa::validate_group_map({0, 2, 2}, 3, "f", "m"), InputError);
  try {
    gqa::validate_group_map({1, 1}, 2, "file.json", "field.map");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "file.json");
    EXPECT_EQ(e.field(), "field.map");
  }
  auto even = AttentionLayout::even(6, 3, 4, 2);
  EXPECT_EQ(even.group_of, (std::vector<int>{0, 0, 1, 1, 2, 2}));
  EXPECT_TRUE(even.is_contiguous_even());
}

// Configs exactly as transformers writes them (its defaults, nulls and extra fields).
TEST(Config, TransformersWrittenConfigs) {
  const std::string py = GQA_PYTHON;
  if (py.empty() || !fs::exists(py)) GTEST_SKIP() << "no Python at '" << py << "'";
  TempDir d;
  const std::string script = d.file("write.py");
  {
    std::ofstream s(script);
    s << R"PY(
import os, sys
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
import transformers as T
out = sys.argv[1]
T.GPT2Config(vocab_size=384, n_embd=72, n_head=6, n_layer=3, n_positions=64).save_pretrained(out + "/gpt2")
T.GPTNeoConfig(vocab_size=384, hidden_size=60, num_heads=6, num_layers=2, attention_types=[[["local", "global"], 1]],
               window_size=3, intermediate_size=100, max_position_embeddings=64).save_pretrained(out + "/neo")
T.T5Config(vocab_size=384, d_model=48, d_kv=8, num_heads=6, num_layers=2, num_decoder_layers=3, d_ff=96,
           feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0).save_pretrained(out + "/t5")
T.LlamaConfig(vocab_size=384, hidden_size=96, num_attention_heads=6, num_key_value_heads=2, head_dim=12,
              intermediate_size=160, num_hidden_layers=3, attention_bias=True, max_position_embeddings=128,
              rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}).save_pretrained(out + "/llama")
T.LlamaConfig(vocab_size=384, hidden_size=64, num_attention_heads=8, num_key_value_heads=1, intermediate_size=96,
              num_hidden_layers=2, tie_word_embeddings=True, max_position_embeddings=128,
              rope_parameters={"rope_type": "llama3", "factor": 8.0, "rope_theta": 10000.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}).save_pretrained(out + "/llama3")
)PY";
  }
  const std::string cmd = "'" + py + "' '" + script + "' '" + d.path.string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  auto g = gqa::load_config(d.file("gpt2"));
  EXPECT_EQ(g.family, Family::GPT2);
  EXPECT_EQ(g.n_heads, 6);
  EXPECT_EQ(g.ffn_dim, 288);  // n_inner: null
  EXPECT_EQ(g.layout(AttentionModule::DecoderSelf, 2).head_dim_qk, 12);
  EXPECT_TRUE(g.layout(AttentionModule::DecoderSelf, 2).is_mha());

  auto n = gqa::load_config(d.file("neo"));
  EXPECT_EQ(n.family, Family::GPTNeo);
  EXPECT_EQ(n.attention_types, (std::vector<std::string>{"local", "global"}));
  EXPECT_EQ(n.window_size, 3);
  EXPECT_EQ(n.ffn_dim, 100);
  EXPECT_EQ(n.layout(AttentionModule::DecoderSelf, 0).head_dim_qk, 10);

  auto t = gqa::load_config(d.file("t5"));
  EXPECT_EQ(t.family, Family::T5);
  EXPECT_EQ(t.n_encoder_layers, 2);
  EXPECT_EQ(t.n_layers, 3);
  EXPECT_TRUE(t.gated_ffn);
  EXPECT_EQ(t.layout(AttentionModule::DecoderCross, 2).head_dim_qk, 8);
  EXPECT_EQ(t.decoder_start_token_id, 0);

  auto l = gqa::load_config(d.file("llama"));
  EXPECT_EQ(l.family, Family::Llama);
  EXPECT_TRUE(l.attention_bias);
  EXPECT_EQ(l.rope.type, RopeType::Linear);
  EXPECT_EQ(l.rope.factor, 2.0);
  EXPECT_EQ(l.rope.theta, 500.0);
  const auto& lay = l.layout(AttentionModule::DecoderSelf, 2);
  EXPECT_EQ(lay.n_q, 6);
  EXPECT_EQ(lay.n_kv, 2);
  EXPECT_EQ(lay.head_dim_qk, 12);
  EXPECT_EQ(l.kv_bytes_per_token(4), 3 * 2 * 24 * 4);

  auto l3 = gqa::load_config(d.file("llama3"));
  EXPECT_EQ(l3.rope.type, RopeType::Llama3);
  EXPECT_EQ(l3.rope.original_max_positions, 16);
  EXPECT_TRUE(l3.tie_word_embeddings);
  EXPECT_EQ(l3.layout(AttentionModule::DecoderSelf, 0).group_sizes(), std::vector<int>{8});
}

// ---------------------------------------------------------------------------------------------
// Inputs found with the fuzz targets (tests/fuzz/fuzz_config.cpp; docs/robustness.md, "Fuzzing").

// num_hidden_layers 2e9 asked for an 80 GB table of layouts (out of memory); 2e9 heads filled a
// group map of 2e9 entries (10 s timeout). Layer and head counts now stop at 4096, as gqa train's.
TEST(Config, FuzzHugeLayerAndHeadCounts) {
  EXPECT_TRUE(Rejects(with(llama(), "num_hidden_layers", 2000000000), "num_hidden_layers", "up to 4096"));
  EXPECT_TRUE(Rejects(with(with(llama(), "num_attention_heads", 2000000000), "hidden_size", 2000000000),
                      "num_attention_heads", "up to 4096"));
  EXPECT_TRUE(Rejects(with(gpt2(), "n_layer", 4097), "n_layer"));
  EXPECT_TRUE(Rejects(with(t5(), "num_decoder_layers", 1 << 30), "num_decoder_layers"));
  EXPECT_EQ(parse(with(gpt2(), "n_layer", 4096)).layouts.at(AttentionModule::DecoderSelf).size(), 4096u);
  // GPT-Neo's attention_types stop expanding once they pass num_layers.
  EXPECT_TRUE(Rejects(with(neo(), "attention_types", json::parse(R"([[["global"],60000],[["local"],60000]])")),
                      "attention_types", "more than num_layers"));
}

// A config.json nested a million levels deep parsed, then overflowed the stack when copied (a
// crash, not exit 2). Files nested deeper than 512 levels are refused when read.
TEST(Config, FuzzDeeplyNestedJson) {
  TempDir d;
  const std::string path = d.file("config.json");
  const int depth = 200000;
  write_text(path, R"({"model_type": "llama", "x": )" + std::string(depth, '[') + std::string(depth, ']') + "}");
  try {
    gqa::load_config(path);
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find("nested deeper than 512"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gqa::read_json_file(path), InputError);
  // Brackets inside strings do not count.
  write_text(path, R"({"s": ")" + std::string(2000, '[') + R"("})");
  EXPECT_EQ(gqa::read_json_file(path)["s"].get<std::string>().size(), 2000u);
}

}  // namespace
