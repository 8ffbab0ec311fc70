// The grouped-attention fields of config.json have one owner (core/config): with_layout_fields
// writes what parse_config reads. For every family and the layouts the converter, `gqa train` and
// the trainer's regrouping write, parse(write(c)) gives c's layouts back and write(parse(j)) == j.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/family.h"
#include "core/init_model.h"

namespace {

using gqa::AttentionLayout;
using gqa::AttentionModule;
using gqa::Family;
using gqa::ModelConfig;
using json = nlohmann::json;

const Family kFamilies[] = {Family::GPT2,    Family::GPTNeo, Family::Llama, Family::T5,
                            Family::GPTNeoX, Family::OPT,    Family::Qwen2};

// An MHA model of the family: 6 heads of 16 dims, 3 layers (T5: 2 encoder layers).
ModelConfig mha_model(Family f) {
  gqa::ModelShape s;
  s.family = f;
  s.d_model = 96;
  s.n_heads = 6;
  s.n_layers = 3;
  s.vocab_size = 100;
  s.max_positions = 64;
  if (f == Family::T5) s.n_encoder_layers = 2;
  return gqa::parse_config(gqa::make_config(s), "config.json");
}

AttentionLayout grouped(std::vector<int> group_of, int qk = 16, int v = 16) {
  AttentionLayout l = AttentionLayout::even(6, 6, qk, v);
  l.group_of = std::move(group_of);
  int n_kv = 0;
  for (int g : l.group_of) n_kv = std::max(n_kv, g + 1);
  l.n_kv = n_kv;
  return l;
}

// A latent (MLA) block: rank R, and for RoPE families a 4-dim rotary key turning at pairs 0 and 1.
AttentionLayout latent(const ModelConfig& c, int rank) {
  const bool rope = c.spec().positions == gqa::Positions::Rotary;
  AttentionLayout l = AttentionLayout::even(6, 1, rope ? 16 + 4 : 16, 16);
  l.latent_rank = rank;
  if (rope) {
    l.latent_rope_dims = 4;
    l.latent_rope_pairs = {0, 1};
  }
  return l;
}

// What a conversion may leave: a name and the change it makes to an MHA model's config.
struct Variant {
  std::string name;
  std::function<void(ModelConfig&)> apply;
};

void set_module(ModelConfig& c, AttentionModule m, const AttentionLayout& l) {
  if (c.layouts.count(m)) c.layouts[m].assign(c.layouts[m].size(), l);
}

std::vector<Variant> variants() {
  const AttentionModule self = AttentionModule::DecoderSelf, cross = AttentionModule::DecoderCross;
  return {
      {"mha", [](ModelConfig&) {}},
      {"even_kv2",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 0, 0, 1, 1, 1}));
       }},
      {"uneven",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 0, 0, 1, 1, 2}));
       }},
      {"permuted",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 1, 0, 1, 2, 2}));
       }},
      {"kqv",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 1, 2, 3, 4, 5}, 8, 12));
       }},
      {"per_layer",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 0, 1, 1, 2, 2}));
         c.layouts[self][1] = grouped({0, 0, 0, 0, 0, 1}, 16, 10);
       }},
      {"weighted",
       [=](ModelConfig& c) {
         set_module(c, self, grouped({0, 0, 1, 1, 2, 2}));
         set_module(c, cross, grouped({0, 0, 1, 1, 2, 2}));
         c.weighted = {self};
         if (c.is_encoder_decoder()) c.weighted.insert(cross);
       }},
      {"rope_pairs",
       [=](ModelConfig& c) {
         if (c.spec().positions != gqa::Positions::Rotary || c.rotary_dim > 0) return;  // full rotary only
         set_module(c, self, grouped({0, 0, 0, 1, 1, 1}, 8, 16));
         c.rope_pairs = {0, 2, 4, 6};
       }},
      {"latent",
       [=](ModelConfig& c) {
         set_module(c, self, latent(c, 40));
         set_module(c, cross, latent(c, 40));
       }},
      {"latent_mixed_layers",
       [=](ModelConfig& c) {
         set_module(c, self, latent(c, 40));
         c.layouts[self][1] = AttentionLayout::even(6, 6, 16, 16);  // left MHA (gqa convert --layers)
         c.layouts[self][2] = latent(c, 24);
       }},
      {"cross_only",
       [=](ModelConfig& c) {
         set_module(c, cross, grouped({0, 0, 0, 0, 0, 0}));
       }},
      {"encoder_and_cross",
       [=](ModelConfig& c) {
         set_module(c, AttentionModule::EncoderSelf, grouped({0, 0, 1, 1, 2, 2}));
         set_module(c, cross, grouped({0, 0, 1, 1, 2, 2}));
       }},
  };
}

TEST(LayoutFields, RoundTripEveryFamilyAndLayout) {
  for (Family f : kFamilies)
    for (const Variant& v : variants()) {
      SCOPED_TRACE(std::string(gqa::family_name(f)) + " " + v.name);
      ModelConfig c = mha_model(f);
      v.apply(c);
      const json written = gqa::with_layout_fields(c);
      const ModelConfig back = gqa::parse_config(written, "config.json");
      for (AttentionModule m : c.modules()) {
        ASSERT_EQ(back.layouts.at(m).size(), c.layouts.at(m).size());
        for (size_t l = 0; l < c.layouts.at(m).size(); ++l) {
          const AttentionLayout &a = back.layouts.at(m)[l], &b = c.layouts.at(m)[l];
          EXPECT_EQ(a.group_of, b.group_of) << gqa::module_name(m) << " " << l;
          EXPECT_EQ(a.n_kv, b.n_kv);
          EXPECT_EQ(a.head_dim_qk, b.head_dim_qk);
          EXPECT_EQ(a.head_dim_v, b.head_dim_v);
          EXPECT_EQ(a.latent_rank, b.latent_rank);
          EXPECT_EQ(a.latent_rope_dims, b.latent_rope_dims);
          EXPECT_EQ(a.latent_rope_pairs, b.latent_rope_pairs);
        }
      }
      EXPECT_EQ(back.weighted, c.weighted);
      EXPECT_EQ(back.rope_pairs, c.rope_pairs);
      EXPECT_EQ(gqa::with_layout_fields(back), written);  // writing what was read changes nothing
      // Families whose transformers class reads num_key_value_heads always state it; others only
      // for grouped models.
      bool any_grouped = false;
      const AttentionLayout mha = AttentionLayout::even(6, 6, 16, 16);
      for (AttentionModule m : c.modules())
        for (const AttentionLayout& l : c.layouts.at(m))
          any_grouped |= l.group_of != mha.group_of || l.head_dim_qk != 16 || l.head_dim_v != 16 || l.is_latent();
      EXPECT_EQ(written.contains("num_key_value_heads"), c.spec().kv_heads_field || any_grouped);
    }
}

TEST(LayoutFields, ReplacesStaleFieldsAndKeepsOthers) {
  ModelConfig c = mha_model(Family::Llama);
  c.raw["gqa_group_map"] = {0, 0, 0, 1, 1, 2};  // stale: the layouts say MHA
  c.raw["gqa_conversion"] = {{"strategy", "mean"}};
  c.raw["gqa_training"] = {{"tokens", 1234}};
  const json j = gqa::with_layout_fields(c);
  EXPECT_FALSE(j.contains("gqa_group_map"));
  EXPECT_EQ(j["num_key_value_heads"], 6);
  EXPECT_EQ(j["gqa_conversion"]["strategy"], "mean");
  EXPECT_EQ(gqa::parse_config(j, "config.json").pretraining_tokens, 1234);
}

TEST(LayoutFields, WeightedModulesMustBeTheGroupedOnes) {
  ModelConfig c = mha_model(Family::T5);
  set_module(c, AttentionModule::DecoderSelf, grouped({0, 0, 1, 1, 2, 2}));
  set_module(c, AttentionModule::DecoderCross, grouped({0, 0, 1, 1, 2, 2}));
  c.weighted = {AttentionModule::DecoderSelf};  // gqa_weighted cannot single out one grouped module
  EXPECT_THROW(gqa::with_layout_fields(c), std::logic_error);
}

TEST(LayoutFields, PretrainingTokensAreAnInteger) {
  json j = gqa::make_config([] {
    gqa::ModelShape s;
    s.vocab_size = 100;
    return s;
  }());
  j["gqa_training"] = {{"tokens", "many"}};
  try {
    gqa::parse_config(j, "config.json");
    FAIL() << "accepted a string";
  } catch (const gqa::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("gqa_training.tokens"), std::string::npos) << e.what();
  }
  j["gqa_training"] = {{"tokens", 5000}, {"steps", 10}};
  EXPECT_EQ(gqa::parse_config(j, "config.json").pretraining_tokens, 5000);
  j.erase("gqa_training");
  EXPECT_FALSE(gqa::parse_config(j, "config.json").pretraining_tokens.has_value());
}

}  // namespace
