// ROUGE-1, ROUGE-2 and ROUGE-L (sentence level, not "rougeLsum") exactly as Google's rouge-score
// package (0.1.2) computes them, Porter stemmer included, so numbers can be compared with papers
// and Python baselines. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace gqa {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL;
};

class RougeScorer {
 public:
  explicit RougeScorer(bool use_stemmer = true) : use_stemmer_(use_stemmer) {}

  // rouge-score's default tokenizer on UTF-8 text: lowercase, every character other than
  // [a-z0-9] separates tokens, words longer than 3 characters are Porter-stemmed. As in Python,
  // U+0130 (İ) lowercases to "i" + a combining dot and U+212A (Kelvin sign) to "k"; every
  // other non-ASCII character, and every byte that is not valid UTF-8, is a separator.
  std::vector<std::string> tokenize(const std::string& text) const;

  // `target` is the reference, `prediction` the system output: precision is over the
  // prediction's n-grams, recall over the target's.
  RougeScores score(const std::string& target, const std::string& prediction) const;

  // Arithmetic mean of each precision, recall and F-measure over the pairs (not rouge-score's
  // bootstrap resampling). Throws InputError when the counts differ or there is no pair.
  RougeScores mean_score(const std::vector<std::string>& targets, const std::vector<std::string>& predictions) const;

  bool use_stemmer() const { return use_stemmer_; }

 private:
  bool use_stemmer_;
};

// Arithmetic mean of per-pair scores. Throws InputError when `per_pair` is empty.
RougeScores mean_scores(const std::vector<RougeScores>& per_pair);

// NLTK's PorterStemmer in its default NLTK_EXTENSIONS mode (the one rouge-score uses), for
// lowercase ASCII words; ASCII capitals are lowercased first, other bytes are kept as they are.
std::string porter_stem(const std::string& word);

}  // namespace gqa
