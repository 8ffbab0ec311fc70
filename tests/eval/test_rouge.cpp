// ROUGE against Google's rouge-score package (run here through tests/oracle/rouge_oracle.py on the
// corpus's summarization test set), the NLTK Porter stemmer on every distinct corpus word, the
// tokenizer on every Unicode code point, and small cases worked out by hand.
#include "eval/rouge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using Tokens = std::vector<std::string>;

// Runs one part of the oracle (pairs, stems or tokenizer) and returns what it wrote.
nlohmann::json run_oracle(const std::string& part) {
  test::TempDir dir("gqa-rouge");
  const std::string out = dir.file(part + ".json");
  const std::string command = std::string("'") + GQA_PYTHON + "' '" + GQA_SOURCE_DIR +
                              "/tests/oracle/rouge_oracle.py' '" + out + "' --corpus '" + GQA_CORPUS_DIR + "' --part " +
                              part;
  const int status = std::system(command.c_str());
  if (status != 0) throw std::runtime_error("oracle failed (status " + std::to_string(status) + "): " + command);
  return nlohmann::json::parse(test::read_text(out));
}

std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18));
    s += char(0x80 | ((c >> 12) & 0x3F));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
  return s;
}

void expect_score(const RougeScore& got, double precision, double recall, double fmeasure, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_DOUBLE_EQ(got.precision, precision);
  EXPECT_DOUBLE_EQ(got.recall, recall);
  EXPECT_DOUBLE_EQ(got.fmeasure, fmeasure);
}

void expect_zero(const RougeScores& got) {
  for (const RougeScore* s : {&got.rouge1, &got.rouge2, &got.rougeL}) {
    EXPECT_EQ(s->precision, 0.0);
    EXPECT_EQ(s->recall, 0.0);
    EXPECT_EQ(s->fmeasure, 0.0);
  }
}

// ---------------------------------------------------------------------------------------------
// Against the Python package.

TEST(RougeOracle, EveryPairOfTheSummarizationTestSetMatchesRougeScore) {
  const nlohmann::json oracle = run_oracle("pairs");
  const nlohmann::json& pairs = oracle.at("pairs");
  ASSERT_GT(pairs.size(), 10000u);  // 1774 records x 8 predictions
  const RougeScorer stemming(true), plain(false);
  double max_diff = 0;
  size_t values = 0, failures = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const nlohmann::json& pair = pairs[i];
    for (auto [key, scorer] : {std::pair{"stem", &stemming}, std::pair{"nostem", &plain}}) {
      const RougeScores got = scorer->score(pair.at("target"), pair.at("prediction"));
      for (auto [name, score] : {std::pair{"rouge1", got.rouge1}, {"rouge2", got.rouge2}, {"rougeL", got.rougeL}}) {
        const nlohmann::json& expected = pair.at(key).at(name);
        const double got_values[] = {score.precision, score.recall, score.fmeasure};
        for (int k = 0; k < 3; ++k) {
          const double diff = std::abs(got_values[k] - expected[k].get<double>());
          max_diff = std::isnan(diff) ? diff : std::max(max_diff, diff);  // a NaN must not hide
          ++values;
          if (!(diff <= 1e-6) && ++failures <= 10)
            ADD_FAILURE() << "pair " << i << " " << key << " " << name << " ["
                          << "PRF"[k] << "]: got " << got_values[k] << ", rouge-score " << expected[k]
                          << "\n  target: " << pair.at("target") << "\n  prediction: " << pair.at("prediction");
        }
      }
    }
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(values, pairs.size() * 2 * 3 * 3);
  std::cout << pairs.size() << " pairs, " << values << " values, max |C++ - rouge-score| = " << max_diff << "\n";
  RecordProperty("max_abs_diff", std::to_string(max_diff));

  // The mean over pairs is the plain average of the per-pair values.
  std::vector<std::string> targets, predictions;
  double fmeasure_sum = 0;
  for (const nlohmann::json& pair : pairs) {
    targets.push_back(pair.at("target"));
    predictions.push_back(pair.at("prediction"));
    fmeasure_sum += pair.at("stem").at("rougeL")[2].get<double>();
  }
  EXPECT_NEAR(stemming.mean_score(targets, predictions).rougeL.fmeasure, fmeasure_sum / pairs.size(), 1e-9);
}

TEST(RougeOracle, PorterStemmerMatchesNltkOnEveryCorpusWord) {
  const nlohmann::json oracle = run_oracle("stems");
  const nlohmann::json& stems = oracle.at("stems");
  ASSERT_GT(stems.size(), 5000u);
  size_t failures = 0;
  for (const auto& [word, expected] : stems.items()) {
    const std::string got = porter_stem(word);
    if (got != expected.get<std::string>() && ++failures <= 20)
      ADD_FAILURE() << "'" << word << "': got '" << got << "', nltk '" << expected.get<std::string>() << "'";
  }
  EXPECT_EQ(failures, 0u) << "of " << stems.size() << " words";
}

TEST(RougeOracle, TokenizerMatchesOnEdgeTextsAndEveryCodePoint) {
  const nlohmann::json oracle = run_oracle("tokenizer");
  const RougeScorer stemming(true), plain(false);
  for (const nlohmann::json& row : oracle.at("tokens")) {
    const std::string text = row.at("text");
    EXPECT_EQ(stemming.tokenize(text), row.at("stem").get<Tokens>()) << text;
    EXPECT_EQ(plain.tokenize(text), row.at("nostem").get<Tokens>()) << text;
  }

  // Python lists the code points c for which "a" + c + "b" does not give ["a", "b"].
  const nlohmann::json& special = oracle.at("codepoints");
  ASSERT_GE(special.size(), 62u);  // at least A-Z, a-z, 0-9
  size_t failures = 0, checked = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;  // surrogates have no UTF-8 form
    ++checked;
    const Tokens got = stemming.tokenize("a" + utf8(c) + "b");
    const auto it = special.find(std::to_string(uint32_t(c)));
    const Tokens expected = it == special.end() ? Tokens{"a", "b"} : it->get<Tokens>();
    if (got != expected && ++failures <= 10) ADD_FAILURE() << "code point U+" << std::hex << uint32_t(c);
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(checked, 0x110000u - 0x800u);
}

// ---------------------------------------------------------------------------------------------
// Worked out by hand.

TEST(Rouge, OverlapCountsAndLongestCommonSubsequence) {
  // Words of at most 3 letters are never stemmed. Target: the cat sat on the mat (6 tokens).
  const RougeScores s = RougeScorer().score("The cat sat on the mat.", "the cat on the mat");
  // Unigrams: the x2, cat, on, mat match (5); the prediction has 5.
  expect_score(s.rouge1, 1.0, 5.0 / 6, 10.0 / 11, "rouge1");
  // Bigrams: the-cat, on-the, the-mat of target's 5 and prediction's 4.
  expect_score(s.rouge2, 3.0 / 4, 3.0 / 5, 2.0 / 3, "rouge2");
  // The whole prediction is a subsequence of the target.
  expect_score(s.rougeL, 1.0, 5.0 / 6, 10.0 / 11, "rougeL");
}

TEST(Rouge, RepeatedTokensAreClipped) {
  const RougeScores s = RougeScorer().score("a a a b", "a a");
  expect_score(s.rouge1, 1.0, 0.5, 2.0 / 3, "rouge1");  // min(3, 2) = 2 of 4
  expect_score(s.rouge2, 1.0, 1.0 / 3, 0.5, "rouge2");  // a-a once of a-a, a-a, a-b
  expect_score(s.rougeL, 1.0, 0.5, 2.0 / 3, "rougeL");
}

TEST(Rouge, StemmingMakesInflectionsMatch) {
  // running -> run, dogs -> dog, runs -> run; "the" and "dog" are too short to stem.
  const RougeScores stemmed = RougeScorer(true).score("Running dogs", "the dog runs");
  expect_score(stemmed.rouge1, 2.0 / 3, 1.0, 0.8, "rouge1");
  expect_score(stemmed.rouge2, 0.0, 0.0, 0.0, "rouge2");      // run-dog vs the-dog, dog-run
  expect_score(stemmed.rougeL, 1.0 / 3, 0.5, 0.4, "rougeL");  // one of run/dog in order
  expect_zero(RougeScorer(false).score("Running dogs", "the dog runs"));
}

TEST(Rouge, EmptySidesScoreZero) {
  const RougeScorer scorer;
  expect_zero(scorer.score("", ""));
  expect_zero(scorer.score("a cat", ""));
  expect_zero(scorer.score("", "a cat"));
  expect_zero(scorer.score("!!! --- ...", "a cat"));  // punctuation only: no token
  // One token: no bigram on either side, so ROUGE-2 is 0/max(0, 1) = 0 while the others are 1.
  const RougeScores one = scorer.score("cat", "Cat!");
  expect_score(one.rouge1, 1, 1, 1, "rouge1");
  expect_score(one.rouge2, 0, 0, 0, "rouge2");
  expect_score(one.rougeL, 1, 1, 1, "rougeL");
}

TEST(Rouge, TokenizerRules) {
  const RougeScorer plain(false), stemming(true);
  EXPECT_EQ(plain.tokenize("It's 3.14, A-OK!\tx86_64\n"), (Tokens{"it", "s", "3", "14", "a", "ok", "x86", "64"}));
  EXPECT_EQ(stemming.tokenize("Generalizations are running"), (Tokens{"gener", "are", "run"}));
  EXPECT_EQ(stemming.tokenize("runs ran"), (Tokens{"run", "ran"}));  // 4 letters stemmed, 3 not
  EXPECT_TRUE(plain.tokenize("").empty());
}

TEST(Rouge, UnicodeIsSeparatorExceptTwoLettersThatLowercaseToAscii) {
  const RougeScorer plain(false);
  // Accented letters, CJK and emoji separate words; they are not transliterated.
  EXPECT_EQ(plain.tokenize("naïve café 東京 🤖ok"), (Tokens{"na", "ve", "caf", "ok"}));
  // U+0130 lowercases to "i" + U+0307 (the dot separates); U+212A (Kelvin sign) to "k".
  EXPECT_EQ(plain.tokenize("\xC4\xB0stanbul"), (Tokens{"i", "stanbul"}));
  EXPECT_EQ(plain.tokenize("5\xE2\x84\xAA \xE2\x84\xAA"
                           "elvin"),
            (Tokens{"5k", "kelvin"}));
  // Bytes that are not UTF-8 separate, truncated sequences included.
  EXPECT_EQ(plain.tokenize("ab\xFF"
                           "cd\xC4"),
            (Tokens{"ab", "cd"}));
  EXPECT_EQ(plain.tokenize("x\xE2\x84y"), (Tokens{"x", "y"}));
  // The same word with and without an accent does not match.
  const RougeScores s = RougeScorer().score("résumé", "resume");
  EXPECT_EQ(s.rouge1.fmeasure, 0.0);
}

TEST(Rouge, PorterStemmerNltkExtensions) {
  const std::pair<const char*, const char*> cases[] = {
      {"caresses", "caress"},
      {"ponies", "poni"},
      {"ties", "tie"},
      {"cats", "cat"},
      {"agreed", "agre"},
      {"feed", "feed"},
      {"plastered", "plaster"},
      {"motoring", "motor"},
      {"hopping", "hop"},
      {"falling", "fall"},
      {"filing", "file"},
      {"happy", "happi"},
      {"enjoy", "enjoy"},
      {"skies", "sky"},
      {"dying", "die"},
      {"died", "die"},
      {"spied", "spi"},
      {"relational", "relat"},
      {"conditional", "condit"},
      {"rational", "ration"},
      {"geology", "geolog"},
      {"controlling", "control"},
      {"a", "a"},
      {"is", "is"},
      {"", ""},
      {"Running", "run"},
  };
  for (const auto& [word, stem] : cases) EXPECT_EQ(porter_stem(word), stem) << word;
}

TEST(Rouge, MeanScoreAveragesPairs) {
  const RougeScorer scorer;
  // rouge1 F: 1 for identical texts, 10/11 for the first hand case above.
  const RougeScores mean = scorer.mean_score({"the cat", "The cat sat on the mat."}, {"the cat", "the cat on the mat"});
  EXPECT_DOUBLE_EQ(mean.rouge1.fmeasure, (1.0 + 10.0 / 11) / 2);
  EXPECT_DOUBLE_EQ(mean.rouge2.precision, (1.0 + 3.0 / 4) / 2);
  EXPECT_THROW(scorer.mean_score({"a"}, {"a", "b"}), InputError);
  EXPECT_THROW(scorer.mean_score({}, {}), InputError);
}

}  // namespace
}  // namespace gqa
