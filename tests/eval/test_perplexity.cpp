// Perplexity with a sliding window: one window equals the direct mean NLL; disjoint windows add up;
// overlapping windows score every token once.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/perplexity.h"
#include "tests/model/oracle.h"

namespace gqa {
namespace {

std::vector<int64_t> random_ids(int n, int64_t vocab) {
  std::mt19937_64 rng(9);
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int64_t(rng() % uint64_t(vocab)));
  return ids;
}

double direct_nll(const Model& m, const std::vector<int64_t>& ids, size_t begin, size_t end) {
  at::Tensor t =
      at::tensor(std::vector<int64_t>(ids.begin() + int64_t(begin), ids.begin() + int64_t(end))).unsqueeze(0);
  at::Tensor logp = m.forward(t, at::ones_like(t)).log_softmax(-1);
  double nll = 0;
  for (size_t i = begin + 1; i < end; ++i) nll -= logp[0][int64_t(i - begin - 1)][ids[i]].item<double>();
  return nll;
}

TEST(Perplexity, OneWindowIsTheMeanNll) {
  auto m = load_model(test::oracle_dir() + "/llama_mha");
  const auto ids = random_ids(40, m->config().vocab_size);
  const PerplexityResult r = perplexity(*m, ids, 200, 64, 32);
  EXPECT_EQ(r.tokens, 39);
  EXPECT_NEAR(r.nll_sum, direct_nll(*m, ids, 0, 40), 1e-3);
  EXPECT_NEAR(r.perplexity(), std::exp(r.nll_sum / 39), 1e-9);
  EXPECT_NEAR(r.bits_per_byte(), r.nll_sum / std::log(2.0) / 200, 1e-12);
}

TEST(Perplexity, DisjointWindowsAddUp) {
  auto m = load_model(test::oracle_dir() + "/gpt2_h4");
  const auto ids = random_ids(50, m->config().vocab_size);
  const PerplexityResult r = perplexity(*m, ids, 1, 20, 20, 2);
  // Windows [0,20) [20,40) [40,50): each scores the tokens after its first, with history from
  // its own start only (a window's first token has none, so it goes unscored).
  const double want = direct_nll(*m, ids, 0, 20) + direct_nll(*m, ids, 20, 40) + direct_nll(*m, ids, 40, 50);
  EXPECT_EQ(r.tokens, 47);
  EXPECT_NEAR(r.nll_sum, want, 1e-3);
}

TEST(Perplexity, OverlappingWindowsScoreEachTokenOnce) {
  auto m = load_model(test::oracle_dir() + "/gpt_neo_h4");
  const auto ids = random_ids(45, m->config().vocab_size);
  const PerplexityResult r = perplexity(*m, ids, 1, 16, 8, 3);
  EXPECT_EQ(r.tokens, 44);
  EXPECT_TRUE(std::isfinite(r.nll_sum));
}

// The loss is taken a few rows of logits at a time: chunks of 7 rows give the same sums as one
// chunk for the whole batch.
TEST(Perplexity, ChunkedLossEqualsOneChunk) {
  auto m = load_model(test::oracle_dir() + "/llama_gqa_h6kv2");
  const auto ids = random_ids(90, m->config().vocab_size);
  const PerplexityResult whole = perplexity(*m, ids, 300, 32, 16, 3, {}, 1 << 20);
  const PerplexityResult chunked = perplexity(*m, ids, 300, 32, 16, 3, {}, 7);
  EXPECT_EQ(chunked.tokens, whole.tokens);
  EXPECT_NEAR(chunked.nll_sum, whole.nll_sum, 1e-9 * std::abs(whole.nll_sum));
}

// A OneBlock model (every window in one pass, block by block) scores what the whole model does,
// and the progress callback sees every token once, ending at the total.
TEST(Perplexity, OneBlockModelEqualsWholeModel) {
  const std::string dir = test::oracle_dir() + "/gpt_neo_h4";
  auto whole = load_model(dir);
  auto streamed = load_model(dir, Placement{}, Residency::OneBlock);
  const auto ids = random_ids(70, whole->config().vocab_size);
  std::vector<std::pair<int64_t, int64_t>> seen;
  const PerplexityResult a =
      perplexity(*whole, ids, 1, 16, 8, 2, [&](int64_t s, int64_t t) { seen.emplace_back(s, t); });
  const PerplexityResult b = perplexity(*streamed, ids, 1, 16, 8, 2);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-6 * std::abs(a.nll_sum));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), std::make_pair(int64_t(69), int64_t(69)));
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i].first, seen[i - 1].first);
}

}  // namespace
}  // namespace gqa
