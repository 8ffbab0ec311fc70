// Converter exactness: identity conversions reproduce logits bit for bit; models whose K/V heads
// agree within groups convert with mean/first (contiguous groups) and similarity (groups it must
// find) to the same function; head permutation alone changes nothing; converted Llama folders load
// in transformers, and GPT-2/GPT-Neo/T5 exported expanded load in vanilla transformers, with our
// logits. Bad requests fail with InputError and leave no folder behind.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cstdlib>

#include <random>

#include "convert/converter.h"
#include "convert/ffn.h"
#include "convert/grouping.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model/attention.h"
#include "core/model/model.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using test::logits_for;
using test::max_abs_diff;
using test::reference;
using test::transformers_logits;

std::string oracle(const std::string& name) { return test::oracle_case(name); }

struct Conversion {
  std::string case_name, strategy;
  int kv_heads;
  double tolerance;  // 0: bit for bit
};

void PrintTo(const Conversion& c, std::ostream* os) { *os << c.case_name << "/" << c.strategy << "/" << c.kv_heads; }

class Exactness : public testing::TestWithParam<Conversion> {};

TEST_P(Exactness, ConvertedLogitsEqualTheSource) {
  const Conversion& c = GetParam();
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.strategy = c.strategy;
  o.kv_heads = c.kv_heads;
  const std::string out = tmp.file("out");
  convert_checkpoint(oracle(c.case_name), out, o);
  EXPECT_EQ(load_config(out).layout(AttentionModule::DecoderSelf, 0).n_kv, c.kv_heads);
  const double d = max_abs_diff(logits_for(out, c.case_name), logits_for(oracle(c.case_name), c.case_name));
  std::cout << "[convert] " << c.case_name << " " << c.strategy << " kv=" << c.kv_heads << " max_abs_diff=" << d
            << "\n";
  if (c.tolerance == 0)
    EXPECT_EQ(d, 0.0);
  else
    EXPECT_LE(d, c.tolerance);
}

const Conversion kExact[] = {
    // Identity: one head per group keeps every weight, so logits are bit for bit the same.
    {"gpt2_h4", "mean", 4, 0},
    {"gpt2_h6", "first", 6, 0},
    {"gpt_neo_h4", "mean", 4, 0},
    {"llama_mha", "mean", 4, 0},
    {"t5_v10", "mean", 4, 0},
    {"t5_v11", "random", 6, 0},
    {"llama_bf16", "mean", 4, 0},
    // K/V heads equal within contiguous pairs: pooling them is exact.
    {"gpt2_tied_pairs", "mean", 2, 1e-5},
    {"gpt2_tied_pairs", "first", 2, 1e-5},
    {"gpt2_tied_pairs", "random", 2, 1e-5},
    {"gpt_neo_tied_pairs", "mean", 2, 1e-5},
    {"llama_tied_pairs", "mean", 2, 1e-5},
    {"t5_tied_pairs", "mean", 2, 1e-5},
    {"t5_tied_pairs", "similarity", 2, 1e-5},
    // GPT-NeoX (per-head fused q/k/v, partial rotary), OPT and Qwen2 (q/k/v biases).
    {"gpt_neox_parallel", "mean", 4, 0},
    {"opt_post_norm", "first", 6, 0},
    {"qwen2_mha", "mean", 4, 0},
    {"gpt_neox_tied_pairs", "mean", 2, 1e-5},
    {"gpt_neox_tied_pairs", "first", 2, 1e-5},
    {"gpt_neox_tied_pairs", "random", 2, 1e-5},
    {"gpt_neox_tied_pairs", "similarity", 2, 1e-5},
    {"opt_tied_pairs", "mean", 2, 1e-5},
    {"opt_tied_pairs", "similarity", 2, 1e-5},
    {"qwen2_tied_pairs", "mean", 2, 1e-5},
    {"qwen2_tied_pairs", "similarity", 2, 1e-5},
    // Pairs 0&2 and 1&3: only a regrouping that finds them (and permutes the heads) is exact.
    {"gpt2_tied_interleaved", "similarity", 2, 1e-5},
    {"llama_tied_interleaved", "similarity", 2, 1e-5},
};

INSTANTIATE_TEST_SUITE_P(Cases, Exactness, testing::ValuesIn(kExact), [](const testing::TestParamInfo<Conversion>& i) {
  return i.param.case_name + "_" + i.param.strategy + "_kv" + std::to_string(i.param.kv_heads);
});

TEST(Convert, IdentityKeepsEveryTensorByteForByte) {
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.kv_heads = 4;
  convert_checkpoint(oracle("llama_mha"), tmp.file("out"), o);
  Checkpoint a(oracle("llama_mha")), b(tmp.file("out"));
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) {
    const TensorView &x = a.tensor(n), &y = b.tensor(n);
    ASSERT_EQ(x.shape, y.shape) << n;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << n;
  }
}

TEST(Convert, InterleavedPairsWithoutRegroupingAreNotExact) {
  // The control for the similarity cases above: mean pooling of the wrong pairs changes logits.
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.kv_heads = 2;
  convert_checkpoint(oracle("llama_tied_interleaved"), tmp.file("out"), o);
  EXPECT_GT(max_abs_diff(logits_for(tmp.file("out"), "llama_tied_interleaved"),
                         logits_for(oracle("llama_tied_interleaved"), "llama_tied_interleaved")),
            1e-2);
}

// Attention of an AttentionWeights block on random input, through the runtime's attention.
at::Tensor run_block(const AttentionWeights& w, const at::Tensor& x) {
  auto t = [](const Matrix& m) {
    return at::from_blob(const_cast<float*>(m.data()), {m.rows(), m.cols()}, at::kFloat).clone();
  };
  auto tv = [](const Vector& v) {
    return v.size() ? at::from_blob(const_cast<float*>(v.data()), {v.size()}, at::kFloat).clone() : at::Tensor();
  };
  Attention a;
  a.layout = w.layout;
  a.scale = 0.25;
  a.q = {t(w.q), tv(w.q_bias)};
  a.k = {t(w.k), tv(w.k_bias)};
  a.v = {t(w.v), tv(w.v_bias)};
  a.o = {t(w.o), tv(w.o_bias)};
  std::vector<int64_t> g(w.layout.group_of.begin(), w.layout.group_of.end());
  a.group_index = at::tensor(g, at::kLong);
  const int64_t T = x.size(1);
  at::Tensor mask = attention_mask(at::ones({x.size(0), T}, at::kLong), 0, T, true);
  return a.self_attention(x, mask, nullptr, {}, nullptr, 0);
}

TEST(Convert, HeadPermutationAloneKeepsTheFunction) {
  Checkpoint ckpt(oracle("gpt2_h6"));
  const AttentionWeights w = expand_to_mha(read_attention(ckpt, AttentionModule::DecoderSelf, 1));
  std::vector<int> order = {3, 0, 5, 1, 4, 2};
  at::manual_seed(0);
  at::Tensor x = at::randn({2, 7, w.d_model()});
  const double d = max_abs_diff(run_block(permute_heads(w, order), x), run_block(w, x));
  EXPECT_LE(d, 1e-5);
  EXPECT_GT(run_block(w, x).abs().max().item<double>(), 0.1);
}

TEST(Convert, BalancedGroupsFindPlantedGroups) {
  // 12 heads in 3 planted groups of 4 (similarity 0.9 inside, noise outside), shuffled.
  std::mt19937_64 rng(5);
  std::vector<int> planted = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
  std::shuffle(planted.begin(), planted.end(), rng);
  Matrix sim(12, 12);
  std::uniform_real_distribution<float> noise(-0.2f, 0.2f);
  for (int a = 0; a < 12; ++a)
    for (int b = 0; b <= a; ++b)
      sim(a, b) = sim(b, a) = a == b ? 1.0f : planted[size_t(a)] == planted[size_t(b)] ? 0.9f : noise(rng);
  const auto found = balanced_groups(sim, {4, 4, 4}, 1);
  for (int a = 0; a < 12; ++a)
    for (int b = 0; b < 12; ++b)
      EXPECT_EQ(found[size_t(a)] == found[size_t(b)], planted[size_t(a)] == planted[size_t(b)]);
}

TEST(Convert, HungarianIsOptimalOnASmallCase) {
  Matrix cost(3, 3);
  cost << 4, 1, 3, 2, 0, 5, 3, 2, 2;
  EXPECT_EQ(hungarian(cost), (std::vector<int>{1, 0, 2}));  // 1 + 2 + 2 = 5, the optimum
}

// Llama and Qwen2 with num_key_value_heads < heads are native in transformers: it must load the
// folder and compute our logits.
TEST(Convert, GroupedLlamaAndQwen2LoadInTransformers) {
  test::TempDir tmp("gqa-convert");
  for (const char* c : {"llama_mha", "qwen2_mha"})
    for (const char* strategy : {"mean", "similarity"}) {
      ConvertOptions o;
      o.strategy = strategy;
      o.kv_heads = 2;
      const std::string out = tmp.file(std::string(c) + "_" + strategy);
      convert_checkpoint(oracle(c), out, o);
      const double d = max_abs_diff(transformers_logits(out, c, tmp), logits_for(out, c));
      std::cout << "[convert] " << c << " " << strategy << " kv=2 transformers_vs_ours=" << d << "\n";
      EXPECT_LE(d, 1e-4) << c << " " << strategy;
    }
}

// GPT-2, GPT-Neo, T5, GPT-NeoX and OPT have no GQA in transformers: --export expanded repeats the
// KV heads so the vanilla classes load the folder, and their logits must equal our grouped model's.
TEST(Convert, ExpandedExportLoadsInVanillaTransformers) {
  test::TempDir tmp("gqa-convert");
  for (const char* c : {"gpt2_h4", "gpt_neo_h4", "t5_v11", "gpt_neox_parallel", "opt_pre_norm_proj"}) {
    ConvertOptions o;
    o.kv_heads = 2;
    const std::string grouped = tmp.file(std::string(c) + "_grouped"),
                      expanded = tmp.file(std::string(c) + "_expanded");
    convert_checkpoint(oracle(c), grouped, o);
    o.export_expanded = true;
    convert_checkpoint(oracle(c), expanded, o);
    EXPECT_TRUE(load_config(expanded).layout(AttentionModule::DecoderSelf, 0).is_mha());
    const double d = max_abs_diff(transformers_logits(expanded, c, tmp), logits_for(grouped, c));
    std::cout << "[convert] " << c << " expanded transformers_vs_grouped_ours=" << d << "\n";
    EXPECT_LE(d, 1e-4) << c;
  }
}

TEST(Convert, AlreadyGroupedInputGroupsFurther) {
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.mqa = true;
  const ConvertSummary s = convert_checkpoint(oracle("llama_gqa_h6kv2"), tmp.file("mqa"), o);
  EXPECT_EQ(s.kv_bytes_per_token_after * 2, s.kv_bytes_per_token_before);
  // MQA from 2 KV heads of 3 query heads each = the mean of the two KV heads.
  Checkpoint src(oracle("llama_gqa_h6kv2")), dst(tmp.file("mqa"));
  const AttentionWeights a = read_attention(src, AttentionModule::DecoderSelf, 0),
                         b = read_attention(dst, AttentionModule::DecoderSelf, 0);
  EXPECT_LE((b.k - (a.k_head(0) + a.k_head(1)) / 2).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_TRUE(at::isfinite(logits_for(tmp.file("mqa"), "llama_gqa_h6kv2")).all().item<bool>());
}

TEST(Convert, UnevenGroupMapConvertsAndRuns) {
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.group_map = std::vector<int>{0, 0, 1, 2, 2, 2};
  convert_checkpoint(oracle("gpt2_h6"), tmp.file("out"), o);
  const ModelConfig c = load_config(tmp.file("out"));
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 2).group_sizes(), (std::vector<int>{2, 1, 3}));
  EXPECT_TRUE(at::isfinite(logits_for(tmp.file("out"), "gpt2_h6")).all().item<bool>());
}

TEST(Convert, T5ModulesAndLayersAreChosen) {
  test::TempDir tmp("gqa-convert");
  ConvertOptions o;
  o.kv_heads = 1;
  o.modules = {AttentionModule::EncoderSelf, AttentionModule::DecoderCross};
  o.layers = std::set<int64_t>{1};
  convert_checkpoint(oracle("t5_v10"), tmp.file("out"), o);
  const ModelConfig c = load_config(tmp.file("out"));
  EXPECT_EQ(c.layout(AttentionModule::EncoderSelf, 0).n_kv, 4);
  EXPECT_EQ(c.layout(AttentionModule::EncoderSelf, 1).n_kv, 1);
  EXPECT_EQ(c.layout(AttentionModule::DecoderCross, 1).n_kv, 1);
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 1).n_kv, 4);
  EXPECT_TRUE(at::isfinite(logits_for(tmp.file("out"), "t5_v10")).all().item<bool>());
}

// T5 self-attention adds a relative position bias per query head, shared by every layer of the
// stack, so similarity regrouping must not reorder that block's heads: the result equals mean
// pooling over the same groups with the heads where they were.
TEST(Convert, T5SimilarityKeepsSelfAttentionHeadsInPlace) {
  test::TempDir tmp("gqa-convert");
  for (AttentionModule m : {AttentionModule::DecoderSelf, AttentionModule::EncoderSelf}) {
    ConvertOptions sim;
    sim.strategy = "similarity";
    sim.kv_heads = 2;
    sim.modules = {m};
    sim.layers = std::set<int64_t>{1};
    sim.force = true;
    convert_checkpoint(oracle("t5_v11"), tmp.file("sim"), sim);
    const std::vector<int> groups = load_config(tmp.file("sim")).layout(m, 1).group_of;
    ConvertOptions mean = sim;
    mean.strategy = "mean";
    mean.kv_heads.reset();
    mean.group_map = groups;
    convert_checkpoint(oracle("t5_v11"), tmp.file("mean"), mean);
    EXPECT_LT(max_abs_diff(logits_for(tmp.file("sim"), "t5_v11"), logits_for(tmp.file("mean"), "t5_v11")), 1e-5)
        << module_name(m);
  }
}

TEST(ConvertBadInput, EachFailsCleanlyAndLeavesNoFolder) {
  test::TempDir tmp("gqa-convert");
  const std::string out = tmp.file("out");
  auto fails = [&](ConvertOptions o, const std::string& src, const std::string& needle) {
    try {
      convert_checkpoint(oracle(src), out, o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(files::exists(out)) << needle;
    for (const auto& e : files::list_directory(tmp.path)) ADD_FAILURE() << "left behind: " << e;
  };
  ConvertOptions o;
  o.kv_heads = 8;
  fails(o, "gpt2_h4", "more than the model's 4 query heads");
  o.kv_heads = 3;
  fails(o, "gpt2_h4", "does not divide");
  o.kv_heads = 0;
  fails(o, "gpt2_h4", "must be positive");
  o = {};
  o.group_map = std::vector<int>{0, 0, 1};
  fails(o, "gpt2_h4", "one per query head");
  o.group_map = std::vector<int>{0, 0, 2, 2};
  fails(o, "gpt2_h4", "KV head 1 has no query heads");
  o = {};
  fails(o, "gpt2_h4", "give exactly one");
  o.kv_heads = 2;
  o.strategy = "best";
  fails(o, "gpt2_h4", "unknown 'best'");
  o.strategy = "mean";
  o.modules = {AttentionModule::EncoderSelf};
  fails(o, "gpt2_h4", "has no encoder_self");
  o.modules = {};
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  EXPECT_THROW(convert_checkpoint(oracle("gpt2_h4"), out, o), InputError);
  EXPECT_TRUE(files::list_directory(out).empty());  // an existing folder is left alone without --force
  EXPECT_EQ(files::list_directory(tmp.path).size(), 1u);
}

// WGQA: the weighted folder starts as mean pooling, its scalars are stored for uptraining, and
// gqa fold bakes any scalars into plain GQA weights computing the same function.
TEST(Weighted, StartsAsMeanPoolingWithScalarsOneOverG) {
  test::TempDir tmp("gqa-convert");
  for (const char* c : {"gpt2_h4", "llama_mha", "t5_v11", "gpt_neox_parallel", "opt_pre_norm_proj", "qwen2_mha"}) {
    ConvertOptions o;
    const int n_q = int(load_config(oracle(c)).n_heads);
    o.kv_heads = n_q / 2;
    const std::string mean = tmp.file(std::string(c) + "_mean"), weighted = tmp.file(std::string(c) + "_weighted");
    convert_checkpoint(oracle(c), mean, o);
    o.strategy = "weighted";
    convert_checkpoint(oracle(c), weighted, o);
    const ModelConfig wc = load_config(weighted);
    EXPECT_EQ(wc.weighted.count(AttentionModule::DecoderSelf), 1u) << c;
    Checkpoint ck(weighted);
    Vector ks, vs;
    read_attention(ck, AttentionModule::DecoderSelf, 0, &ks, &vs);
    ASSERT_EQ(ks.size(), n_q);
    EXPECT_FLOAT_EQ(ks[0], 0.5f);
    EXPECT_FLOAT_EQ(vs[n_q - 1], 0.5f);
    const double d = max_abs_diff(logits_for(weighted, c), logits_for(mean, c));
    std::cout << "[convert] " << c << " weighted(init) vs mean max_abs_diff=" << d << "\n";
    EXPECT_LE(d, 1e-5) << c;
  }
}

TEST(Weighted, FoldIsExactForAnyScalars) {
  test::TempDir tmp("gqa-convert");
  for (const char* c :
       {"gpt2_h4", "gpt_neo_h4", "llama_mha", "t5_v11", "gpt_neox_sequential", "opt_post_norm", "qwen2_mha"}) {
    ConvertOptions o;
    o.strategy = "random-weighted";  // N(0,1) scalars: far from mean pooling
    o.seed = 11;
    o.kv_heads = int(load_config(oracle(c)).n_heads) / 2;
    const std::string weighted = tmp.file(std::string(c) + "_w"), folded = tmp.file(std::string(c) + "_f"),
                      mean = tmp.file(std::string(c) + "_m");
    convert_checkpoint(oracle(c), weighted, o);
    fold_checkpoint(weighted, folded, false);
    const ModelConfig fc = load_config(folded);
    EXPECT_TRUE(fc.weighted.empty());
    EXPECT_EQ(fc.layout(AttentionModule::DecoderSelf, 0).n_kv, *o.kv_heads);
    Checkpoint fck(folded);
    for (const auto& n : fck.names()) EXPECT_EQ(n.find("gqa_k_scale"), std::string::npos) << n;
    const at::Tensor lw = logits_for(weighted, c), lf = logits_for(folded, c);
    const double d = max_abs_diff(lw, lf);
    std::cout << "[convert] " << c << " random-weighted vs folded max_abs_diff=" << d << "\n";
    EXPECT_LE(d, 1e-5) << c;
    o.strategy = "mean";
    convert_checkpoint(oracle(c), mean, o);
    EXPECT_GT(max_abs_diff(lw, logits_for(mean, c)), 1e-3) << "random scalars should differ from mean pooling";
  }
  // A folded Llama is an ordinary GQA Llama for transformers.
  const double hf = max_abs_diff(transformers_logits(tmp.file("llama_mha_f"), "llama_mha", tmp),
                                 logits_for(tmp.file("llama_mha_f"), "llama_mha"));
  EXPECT_LE(hf, 1e-4);
}

TEST(Weighted, FoldRefusesAPlainFolderAndExpandedExportRefusesWeighted) {
  test::TempDir tmp("gqa-convert");
  EXPECT_THROW(fold_checkpoint(oracle("gpt2_h4"), tmp.file("out"), false), InputError);
  ConvertOptions o;
  o.strategy = "weighted";
  o.kv_heads = 2;
  o.export_expanded = true;
  EXPECT_THROW(convert_checkpoint(oracle("gpt2_h4"), tmp.file("out"), o), InputError);
  EXPECT_TRUE(files::list_directory(tmp.path).empty());
}

// "KQV": smaller q/k and v heads by projection.
std::string reduce(const std::string& src, const test::TempDir& tmp, const std::string& name,
                   std::optional<int> kv_heads, std::optional<int> qk, std::optional<int> v) {
  ConvertOptions o;
  o.kv_heads = kv_heads;
  o.qk_head_dim = qk;
  o.v_head_dim = v;
  convert_checkpoint(src, tmp.file(name), o);
  return tmp.file(name);
}

TEST(HeadDims, FullSizeProjectionIsExactAndSmallerLosesMonotonically) {
  test::TempDir tmp("gqa-kqv");
  const std::string full = reduce(oracle("gpt2_h4"), tmp, "full", std::nullopt, 16, 16);
  const at::Tensor src = logits_for(oracle("gpt2_h4"), "gpt2_h4");
  EXPECT_LE(max_abs_diff(logits_for(full, "gpt2_h4"), src), 1e-4);
  double previous = 0;
  for (int r : {12, 8, 4}) {
    const std::string out = reduce(oracle("gpt2_h4"), tmp, "r" + std::to_string(r), std::nullopt, r, r);
    const ModelConfig c = load_config(out);
    EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 1).head_dim_qk, r);
    const double d = max_abs_diff(logits_for(out, "gpt2_h4"), src);
    std::cout << "[convert] gpt2_h4 kqv r=" << r << " max_abs_diff=" << d << "\n";
    EXPECT_GT(d, previous);
    previous = d;
  }
}

TEST(HeadDims, ReducingAReducedModelAgainIsExact) {
  // After one projection to r the forms have rank <= r, so a second one to r changes nothing.
  test::TempDir tmp("gqa-kqv");
  const std::string once = reduce(oracle("gpt2_h6"), tmp, "once", std::nullopt, 7, 5);
  const std::string twice = reduce(once, tmp, "twice", std::nullopt, 7, 5);
  EXPECT_LE(max_abs_diff(logits_for(twice, "gpt2_h6"), logits_for(once, "gpt2_h6")), 1e-4);
}

TEST(HeadDims, CombinesWithGroupingAndValueHeadsWorkWithRope) {
  test::TempDir tmp("gqa-kqv");
  const std::string grouped = reduce(oracle("gpt2_tied_pairs"), tmp, "g", 2, 16, 16);
  EXPECT_LE(
      max_abs_diff(logits_for(grouped, "gpt2_tied_pairs"), logits_for(oracle("gpt2_tied_pairs"), "gpt2_tied_pairs")),
      1e-4);
  const std::string v_only = reduce(oracle("llama_mha"), tmp, "v", 2, std::nullopt, 8);
  EXPECT_EQ(load_config(v_only).layout(AttentionModule::DecoderSelf, 0).head_dim_v, 8);
  EXPECT_TRUE(at::isfinite(logits_for(v_only, "llama_mha")).all().item<bool>());
  EXPECT_THROW(reduce(oracle("gpt2_h4"), tmp, "big", std::nullopt, 32, std::nullopt), InputError);
  EXPECT_FALSE(files::exists(tmp.file("big")));
}

TEST(MatchParams, WiderFfnKeepsTheFunctionAndTheParameterCount) {
  test::TempDir tmp("gqa-match");
  for (const char* c : {"gpt2_tied_pairs", "llama_tied_pairs", "t5_tied_pairs"}) {
    ConvertOptions o;
    o.kv_heads = 2;
    o.match_params = true;
    const std::string out = tmp.file(c);
    const ConvertSummary s = convert_checkpoint(oracle(c), out, o);
    Checkpoint src(oracle(c)), dst(out);
    EXPECT_EQ(dst.parameter_count(), s.params_after) << c;
    EXPECT_LE(s.params_before - s.params_after, ffn_unit_params(src)) << c;  // less than one more unit short
    EXPECT_GE(s.params_before, s.params_after) << c;
    EXPECT_GT(s.ffn_dim_after, s.ffn_dim_before) << c;
    EXPECT_EQ(load_config(out).ffn_dim, s.ffn_dim_after) << c;
    const double d = max_abs_diff(logits_for(out, c), logits_for(oracle(c), c));
    std::cout << "[convert] " << c << " match-params ffn " << s.ffn_dim_before << "->" << s.ffn_dim_after << " params "
              << s.params_before << "->" << s.params_after << " max_abs_diff=" << d << "\n";
    EXPECT_LE(d, 1e-5) << c;
  }
}

// Rotary models: q/k shrink by whole frequency pairs that keep their own frequencies.
TEST(HeadDims, RopePairsThatCarryNothingAreDroppedExactly) {
  test::TempDir tmp("gqa-kqv");
  ConvertOptions o;
  o.kv_heads = 4;
  o.qk_head_dim = 8;
  convert_checkpoint(oracle("llama_dead_pairs"), tmp.file("out"), o);
  const ModelConfig c = load_config(tmp.file("out"));
  EXPECT_EQ(c.rope_pairs, (std::vector<int>{2, 3, 6, 7}));
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 0).head_dim_qk, 8);
  const double d = max_abs_diff(logits_for(tmp.file("out"), "llama_dead_pairs"),
                                logits_for(oracle("llama_dead_pairs"), "llama_dead_pairs"));
  std::cout << "[convert] llama_dead_pairs rope pairs kept 4/8 max_abs_diff=" << d << "\n";
  EXPECT_LE(d, 1e-5);
}

TEST(HeadDims, RopePairSelectionLosesMoreAsItKeepsLess) {
  test::TempDir tmp("gqa-kqv");
  const at::Tensor src = logits_for(oracle("llama_mha"), "llama_mha");
  double previous = -1;
  for (int r : {16, 12, 8, 4}) {
    ConvertOptions o;
    o.kv_heads = 4;
    o.qk_head_dim = r;
    const std::string out = tmp.file("r" + std::to_string(r));
    convert_checkpoint(oracle("llama_mha"), out, o);
    const double d = max_abs_diff(logits_for(out, "llama_mha"), src);
    if (r == 16) {
      EXPECT_EQ(d, 0.0);  // every pair kept, in order: the same weights
    }
    EXPECT_GT(d, previous) << r;
    previous = d;
  }
  ConvertOptions odd;
  odd.kv_heads = 4;
  odd.qk_head_dim = 7;
  EXPECT_THROW(convert_checkpoint(oracle("llama_mha"), tmp.file("odd"), odd), InputError);
}

}  // namespace
}  // namespace gqa
