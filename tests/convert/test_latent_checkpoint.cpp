// `gqa convert --target mla` through files (issue #21): at full rank (R = d_model, D = every rotary
// dim of every head) the written folder loads and gives the source's logits for every family the
// runtime has, T5's encoder, decoder and cross-attention included; decoding from the latent cache
// gives the logits of the whole sequence; the cache holds rank + rope dims per token; lower ranks
// lose more; bad requests fail with InputError and leave no folder.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "convert/converter.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model/model.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using test::logits_for;
using test::max_abs_diff;

std::string oracle(const std::string& name) { return test::oracle_case(name); }

// Full rank: the latent spans every key and value, the rotary key every rotated dim.
ConvertOptions full_rank(const ModelConfig& c) {
  ConvertOptions o;
  o.latent = LatentTarget{c.d_model, std::nullopt};
  if (c.rope.type != RopeType::None) o.latent->rope_dims = c.n_heads * c.rotary_dims();
  if (c.is_encoder_decoder())
    o.modules = {AttentionModule::EncoderSelf, AttentionModule::DecoderSelf, AttentionModule::DecoderCross};
  return o;
}

class FullRank : public testing::TestWithParam<std::string> {};

TEST_P(FullRank, LatentFolderGivesTheSourceLogits) {
  const std::string name = GetParam();
  test::TempDir tmp("gqa-mla");
  const ModelConfig src = load_config(oracle(name));
  const std::string out = tmp.file("out");
  convert_checkpoint(oracle(name), out, full_rank(src));
  const ModelConfig cfg = load_config(out);
  for (const auto& [module, layouts] : cfg.layouts)
    for (const AttentionLayout& l : layouts) {
      EXPECT_TRUE(l.is_latent()) << module_name(module);
      EXPECT_EQ(l.latent_rank, src.d_model);
    }
  const at::Tensor want = logits_for(oracle(name), name);
  const double d = max_abs_diff(logits_for(out, name), want);
  const double scale = want.abs().max().item<double>();
  std::cout << "[mla] " << name << " full rank max_abs_diff=" << d << " (logits up to " << scale << ")\n";
  EXPECT_LE(d, 2e-4 * std::max(1.0, scale));
}

// Every family, with and without biases, grouped sources, partial rotary and OPT's projections.
INSTANTIATE_TEST_SUITE_P(Families, FullRank,
                         testing::Values("gpt2_h4", "gpt_neo_h4", "gpt_neox_parallel", "gpt_neox_sequential",
                                         "opt_post_norm", "opt_pre_norm_proj", "llama_mha", "llama_gqa_h6kv2",
                                         "qwen2_mha", "qwen2_gqa_sliding", "t5_v10", "t5_v11"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// Greedy decoding one token at a time from the latent cache against the whole sequence at once.
TEST(LatentCheckpoint, DecodingFromTheLatentCacheMatchesTheWholeSequence) {
  for (const std::string name : {"llama_mha", "gpt2_h4", "t5_v11"}) {
    test::TempDir tmp("gqa-mla");
    const ModelConfig src = load_config(oracle(name));
    ConvertOptions o = full_rank(src);
    o.latent->rank = src.d_model / 2;  // a real reduction: the cache path must not rely on exactness
    if (o.latent->rope_dims) o.latent->rope_dims = src.rotary_dims();
    const std::string out = tmp.file("out");
    convert_checkpoint(oracle(name), out, o);
    auto model = load_model(out);
    at::NoGradGuard no_grad;
    const at::Tensor ids = at::randint(3, src.vocab_size, {2, 9}, at::kLong);
    const at::Tensor ones = at::ones_like(ids);
    Memory mem;
    if (model->is_encoder_decoder()) mem = model->encode(ids, ones);
    const Memory* m = model->is_encoder_decoder() ? &mem : nullptr;
    const at::Tensor whole = model->forward(ids, ones, nullptr, m);
    KVCache cache = model->new_cache(2, 16);
    // A prompt of 5, then 4 single steps.
    std::vector<at::Tensor> steps = {model->forward(ids.narrow(1, 0, 5), ones.narrow(1, 0, 5), &cache, m)};
    for (int64_t t = 5; t < 9; ++t)
      steps.push_back(model->forward(ids.narrow(1, t, 1), ones.narrow(1, t, 1), &cache, m));
    const double d = max_abs_diff(at::cat(steps, 1), whole);
    std::cout << "[mla] " << name << " cached decode vs whole max_abs_diff=" << d << "\n";
    EXPECT_LE(d, 1e-4) << name;
    // The cache is the latent and the rotary key: (R + D) values per token, per layer.
    const int64_t per_token = o.latent->rank + o.latent->rope_dims.value_or(0);
    EXPECT_EQ(cache.bytes(), src.n_layers * 2 * 16 * per_token * 4) << name;
    EXPECT_EQ(load_config(out).kv_bytes_per_token(4), src.n_layers * per_token * 4) << name;
  }
}

TEST(LatentCheckpoint, LowerRankLosesMoreAndLayersAreChosen) {
  const std::string name = "llama_mha";
  const ModelConfig src = load_config(oracle(name));
  const at::Tensor want = logits_for(oracle(name), name);
  double previous = -1;
  for (const int64_t rank : {src.d_model, src.d_model / 2, src.d_model / 8}) {
    test::TempDir tmp("gqa-mla");
    ConvertOptions o;
    o.latent = LatentTarget{rank, src.rotary_dims()};  // deepseek layout: one slot per pair
    convert_checkpoint(oracle(name), tmp.file("out"), o);
    const double d = max_abs_diff(logits_for(tmp.file("out"), name), want);
    std::cout << "[mla] llama_mha rank " << rank << " rope " << src.rotary_dims() << " max_abs_diff=" << d << "\n";
    EXPECT_GT(d, previous);
    previous = d;
  }
  test::TempDir tmp("gqa-mla");
  ConvertOptions o;
  o.latent = LatentTarget{8, std::nullopt};
  o.layers = std::set<int64_t>{1};
  convert_checkpoint(oracle(name), tmp.file("out"), o);
  const ModelConfig c = load_config(tmp.file("out"));
  EXPECT_FALSE(c.layout(AttentionModule::DecoderSelf, 0).is_latent());
  EXPECT_TRUE(c.layout(AttentionModule::DecoderSelf, 1).is_latent());
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 1).latent_rope_dims, src.rotary_dims());
  EXPECT_EQ(c.layout(AttentionModule::DecoderSelf, 1).latent_rope_pairs.size(), size_t(src.rotary_dims() / 2));
  EXPECT_EQ(logits_for(tmp.file("out"), name).size(-1), src.vocab_size);  // loads and runs
}

TEST(LatentCheckpoint, BadRequestsFailCleanlyAndLeaveNoFolder) {
  test::TempDir tmp("gqa-mla");
  const std::string out = tmp.file("out");
  auto refused = [&](const std::string& name, ConvertOptions o, const std::string& field) {
    try {
      convert_checkpoint(oracle(name), out, o);
      ADD_FAILURE() << "accepted: " << field;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_FALSE(files::exists(out)) << field;
  };
  ConvertOptions o;
  o.latent = LatentTarget{16, 8};
  refused("gpt2_h4", o, "--rope-dims");  // GPT-2 has no rotary embeddings
  o.latent = LatentTarget{0, std::nullopt};
  refused("llama_mha", o, "--kv-rank");
  o.latent = LatentTarget{1000, std::nullopt};
  refused("llama_mha", o, "--kv-rank");
  o.latent = LatentTarget{16, 7};
  refused("llama_mha", o, "--rope-dims");  // odd
  o.latent = LatentTarget{16, 4096};
  refused("llama_mha", o, "--rope-dims");  // more than every rotary dim
  o.latent = LatentTarget{16, std::nullopt};
  o.kv_heads = 2;
  refused("llama_mha", o, "--target");
  // A latent folder is not converted again.
  ConvertOptions first;
  first.latent = LatentTarget{16, std::nullopt};
  convert_checkpoint(oracle("llama_mha"), tmp.file("latent"), first);
  try {
    convert_checkpoint(tmp.file("latent"), out, first);
    ADD_FAILURE() << "a latent folder converted again";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("gqa_latent"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(files::exists(out));
}

}  // namespace
}  // namespace gqa
