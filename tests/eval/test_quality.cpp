// Minimal pairs against transformers (sentence log-probabilities), the BLiMP reader's errors, and
// the decode benchmark's bookkeeping (KV bytes follow the KV heads; every batch size measured).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "core/error.h"
#include "core/files.h"
#include "core/init_model.h"
#include "core/tokenizers/tokenizer.h"
#include "eval/decode_bench.h"
#include "eval/minimal_pairs.h"
#include "eval/quality.h"
#include "eval/summarize.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

std::string run_capture(const std::string& cmd, int* code) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *code = ::pclose(p);
  return out;
}

class SentenceLogProb : public ::testing::TestWithParam<std::string> {};

TEST_P(SentenceLogProb, EqualsTransformers) {
  test::TempDir tmp("gqa-pairs");
  const std::vector<std::string> sentences{"The man walks to the door.", "The man walk to the door.",
                                           "There were three sisters in the family.", "Ah!",
                                           "He had known her for years."};
  test::write_text(tmp.file("s.json"), nlohmann::json(sentences).dump());
  int code = 0;
  const std::string out = run_capture(
      std::string(GQA_PYTHON) + " " + GQA_SOURCE_DIR + "/tests/oracle/sentence_logprob.py " + GetParam() + " " +
          GQA_SOURCE_DIR + "/examples/assets/bpe4096 " + tmp.file("m") + " " + tmp.file("s.json") + " 2>/dev/null",
      &code);
  ASSERT_EQ(code, 0) << out;
  const auto expected = nlohmann::json::parse(out).get<std::vector<double>>();
  auto model = load_model(tmp.file("m"));
  auto tokenizer = load_tokenizer(tmp.file("m"));
  const auto got = sentence_log_probs(*model, *tokenizer, sentences, 2);  // batches of 2: padding matters
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 2e-4) << sentences[i];
  // The project's own set reads and scores (a random model is near chance; the count is exact).
  const auto pairs = read_minimal_pairs({std::string(GQA_SOURCE_DIR) + "/examples/assets/minimal_pairs/english.jsonl"});
  ASSERT_EQ(pairs.size(), 60u);
  const MinimalPairResult r = minimal_pair_accuracy(*model, *tokenizer, pairs);
  EXPECT_EQ(r.pairs, 60);
  EXPECT_EQ(r.by_phenomenon.size(), 6u);
}

INSTANTIATE_TEST_SUITE_P(Families, SentenceLogProb, ::testing::Values("gpt2", "llama"));

TEST(MinimalPairs, RecordWithoutAFieldNamesFileAndLine) {
  test::TempDir tmp("gqa-pairs");
  test::write_text(tmp.file("p.jsonl"),
                   "{\"sentence_good\": \"a\", \"sentence_bad\": \"b\"}\n{\"sentence_good\": \"a\"}\n");
  try {
    read_minimal_pairs({tmp.file("p.jsonl")});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("p.jsonl:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sentence_bad"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_minimal_pairs({tmp.file("missing.jsonl")}), InputError);
}

TEST(DecodeBench, MeasuresEveryBatchAndKvBytesFollowTheHeads) {
  DecodeBenchOptions o;
  o.batches = {1, 3};
  o.prompt_len = 5;
  o.new_tokens = 4;
  o.repeats = 2;
  auto mha = load_model(test::oracle_case("llama_mha"));          // 4 KV heads
  auto gqa = load_model(test::oracle_case("llama_mqa_sharded"));  // 1 KV head of 8 dims
  const auto a = decode_bench(*mha, o), b = decode_bench(*gqa, o);
  ASSERT_EQ(a.size(), 2u);
  for (const auto& r : a) {
    EXPECT_GT(r.ms_per_step_median, 0);
    EXPECT_LE(r.ms_per_step_min, r.ms_per_step_median);
    EXPECT_GT(r.prefill_tokens_per_s, 0);
    EXPECT_GT(r.peak_bytes, 0);
  }
  // llama_mha: 2 layers x 4 heads x 16 dims x (K+V) x 4 bytes = 1024 bytes per token.
  EXPECT_EQ(a[1].kv_cache_bytes, 1024 * 3 * (5 + 4));
  EXPECT_EQ(b[1].kv_cache_bytes, 2 * 1 * 8 * 2 * 4 * 3 * (5 + 4));
  auto t5 = load_model(test::oracle_case("t5_v10"));
  EXPECT_EQ(decode_bench(*t5, o).size(), 2u);
}

// Greedy summaries of a fresh model with the project's tokenizer: one per record, their ROUGE is
// the rouge-score-equal scorer's mean, a decoder-only summary stops at its first newline, and a
// record without the reference field is an error naming file:line.
TEST(Summaries, RougeOfGreedySummariesIsTheMeanOverRecords) {
  test::TempDir tmp("gqa-summ");
  const std::string tok = std::string(GQA_SOURCE_DIR) + "/examples/assets/bpe4096";
  for (const char* family : {"gpt2", "t5"}) {
    ModelShape shape = parse_model_shape(
        nlohmann::json{{"family", family}, {"layers", 1}, {"d_model", 32}, {"heads", 2}, {"vocab_size", 4096}}, "test");
    const std::string dir = tmp.file(family);
    write_initial_checkpoint(shape, dir, 1, false);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) files::copy_file(tok + "/" + f, dir + "/" + f);
    test::write_text(tmp.file("s.jsonl"),
                     "{\"document\": \"A game of ancient warfare with armies.\", \"summary\": \"strategy game\"}\n"
                     "{\"document\": \"Library for reading ZIP files.\", \"summary\": \"ZIP library\"}\n"
                     "{\"document\": \"Tools for the console.\", \"summary\": \"console tools\"}\n");
    auto model = load_model(dir);
    auto tokenizer = load_tokenizer(dir);
    SummaryOptions o;
    o.max_new_tokens = 6;
    o.batch = 2;
    const SummaryResult r = summarize_rouge(*model, *tokenizer, tmp.file("s.jsonl"), o);
    ASSERT_EQ(r.examples, 3) << family;
    ASSERT_EQ(r.predictions.size(), 3u);
    const std::vector<std::string> refs{"strategy game", "ZIP library", "console tools"};
    RougeScorer scorer(true);
    std::vector<RougeScores> each;
    for (size_t i = 0; i < 3; ++i) {
      each.push_back(scorer.score(refs[i], r.predictions[i]));
      if (std::string(family) == "gpt2") {
        EXPECT_EQ(r.predictions[i].find('\n'), std::string::npos);
      }
    }
    EXPECT_DOUBLE_EQ(r.mean.rouge1.fmeasure, mean_scores(each).rouge1.fmeasure) << family;
    EXPECT_DOUBLE_EQ(r.mean.rougeL.fmeasure, mean_scores(each).rougeL.fmeasure) << family;
  }
  test::write_text(tmp.file("bad.jsonl"), "{\"document\": \"x\", \"summary\": \"y\"}\n{\"document\": \"z\"}\n");
  auto model = load_model(tmp.file("gpt2"));
  try {
    summarize_rouge(*model, *load_tokenizer(tmp.file("gpt2")), tmp.file("bad.jsonl"), SummaryOptions{});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

// measure_quality, behind gqa eval and gqa compare: gqa eval's documented defaults, and results
// equal to the measurements it is made of, reported to the hooks in order as they finish.
TEST(Quality, DefaultsAndResultsOfTheSharedModule) {
  const QualityOptions defaults;
  EXPECT_EQ(defaults.max_tokens, 16384);
  EXPECT_EQ(defaults.context, 0);
  EXPECT_EQ(defaults.stride, 0);
  EXPECT_EQ(defaults.batch, 8);
  EXPECT_EQ(defaults.summary.max_examples, 200);
  EXPECT_EQ(defaults.summary.max_new_tokens, 48);
  EXPECT_EQ(defaults.summary.beams, 1);

  test::TempDir tmp("gqa-quality");
  const std::string tok = std::string(GQA_SOURCE_DIR) + "/examples/assets/bpe4096";
  ModelShape shape = parse_model_shape(nlohmann::json{{"family", "gpt2"},
                                                      {"layers", 1},
                                                      {"d_model", 32},
                                                      {"heads", 2},
                                                      {"vocab_size", 4096},
                                                      {"max_positions", 64}},
                                       "test");
  const std::string dir = tmp.file("m");
  write_initial_checkpoint(shape, dir, 1, false);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) files::copy_file(tok + "/" + f, dir + "/" + f);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The man walks to the door and the dog waits in the garden. ";
  test::write_text(tmp.file("a.txt"), text);
  test::write_text(tmp.file("b.txt"), text.substr(0, 400));
  test::write_text(tmp.file("s.jsonl"),
                   "{\"document\": \"Library for reading ZIP files.\", \"summary\": \"ZIP library\"}\n");
  const auto pairs = read_minimal_pairs({std::string(GQA_SOURCE_DIR) + "/examples/assets/minimal_pairs/english.jsonl"});
  auto model = load_model(dir);
  auto tokenizer = load_tokenizer(dir);

  QualityOptions o;
  o.text = {tmp.file("a.txt"), tmp.file("b.txt")};
  o.max_tokens = 300;
  o.summaries = tmp.file("s.jsonl");
  o.summary.max_new_tokens = 4;
  std::vector<std::string> order;
  QualityHooks hooks;
  hooks.scoring = [&](const std::string& file) {
    order.push_back("scoring " + file);
    return PerplexityProgress{};
  };
  hooks.text_measured = [&](const TextQuality& t) { order.push_back("text " + t.file); };
  hooks.pairs_measured = [&](const MinimalPairResult&) { order.push_back("pairs"); };
  hooks.summaries_measured = [&](const SummaryResult&) { order.push_back("summaries"); };
  const QualityResult r = measure_quality(*model, *tokenizer, pairs, o, hooks);
  EXPECT_EQ(order, (std::vector<std::string>{"scoring " + o.text[0], "text " + o.text[0], "scoring " + o.text[1],
                                             "text " + o.text[1], "pairs", "summaries"}));

  ASSERT_EQ(r.texts.size(), 2u);
  EXPECT_EQ(r.texts[0].context, 64);  // the model's positions (below 512)
  const auto [ids, bytes] = read_eval_tokens(*tokenizer, o.text[0], 300);
  const PerplexityResult direct = perplexity(*model, ids, bytes, 64, 32, 8);
  EXPECT_EQ(r.texts[0].result.tokens, direct.tokens);
  EXPECT_EQ(r.texts[0].result.tokens, 300) << "max_tokens counts the tokens scored, not the tokens read";
  EXPECT_EQ(ids.size(), 301u);
  EXPECT_LT(r.texts[1].result.tokens, 300);  // b.txt is shorter: every token but the first
  EXPECT_DOUBLE_EQ(r.texts[0].result.perplexity(), direct.perplexity());
  ASSERT_TRUE(r.minimal_pairs.has_value());
  EXPECT_EQ(r.minimal_pairs->correct, minimal_pair_accuracy(*model, *tokenizer, pairs, 8).correct);
  ASSERT_TRUE(r.summaries.has_value());
  EXPECT_EQ(r.summaries->examples, 1);

  // Nothing asked, nothing measured; a context beyond the model's positions is refused.
  const QualityResult none = measure_quality(*model, *tokenizer, {}, QualityOptions{});
  EXPECT_TRUE(none.texts.empty() && !none.minimal_pairs && !none.summaries);
  o.context = 65;
  EXPECT_THROW(measure_quality(*model, *tokenizer, pairs, o), InputError);
}

}  // namespace
}  // namespace gqa
