// Mirrors rouge_score/{tokenize,rouge_scorer,scoring}.py and nltk/stem/porter.py step by step
// (same rule order, same "first matching suffix decides" logic, same arithmetic), because the
// point is to give the Python package's numbers, not merely similar ones.
#include "eval/rouge.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace gqa {
namespace {

// ---------------------------------------------------------------------------------------------
// Porter stemmer, NLTK_EXTENSIONS mode.

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// Porter's consonant: not a vowel, and 'y' only when what precedes it is not a consonant (so a
// run of 'y's alternates, starting from the letter before the run; a leading 'y' is one).
bool is_consonant(std::string_view word, size_t i) {
  if (is_vowel(word[i])) return false;
  if (word[i] != 'y') return true;
  bool negate = false;
  while (i > 0 && word[i] == 'y') {
    negate = !negate;
    --i;
  }
  return !is_vowel(word[i]) != negate;
}

// m in [C](VC){m}[V]: the number of vowel→consonant transitions.
int measure(std::string_view stem) {
  int m = 0;
  bool previous_consonant = true;
  for (size_t i = 0; i < stem.size(); ++i) {
    const char c = stem[i];
    const bool consonant = !is_vowel(c) && (c != 'y' || i == 0 || !previous_consonant);
    if (consonant && i > 0 && !previous_consonant) ++m;
    previous_consonant = consonant;
  }
  return m;
}

bool contains_vowel(std::string_view stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_with(std::string_view word, std::string_view suffix) {
  return word.size() >= suffix.size() && word.substr(word.size() - suffix.size()) == suffix;
}

// *d: ends with a double consonant.
bool ends_double_consonant(std::string_view word) {
  const size_t n = word.size();
  return n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1);
}

// *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also accepts a two-letter
// vowel-consonant word.
bool ends_cvc(std::string_view word) {
  const size_t n = word.size();
  if (n >= 3 && is_consonant(word, n - 3) && !is_consonant(word, n - 2) && is_consonant(word, n - 1) &&
      word[n - 1] != 'w' && word[n - 1] != 'x' && word[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(word, 0) && is_consonant(word, 1);
}

// A rule's condition sees the stem (word minus suffix) and, for the few rules that look
// elsewhere, the whole word.
using Condition = bool (*)(std::string_view stem, std::string_view word);
struct Rule {
  std::string_view suffix, replacement;
  Condition condition;  // nullptr: unconditional
};

bool measure_above_0(std::string_view stem, std::string_view) { return measure(stem) > 0; }
bool measure_above_1(std::string_view stem, std::string_view) { return measure(stem) > 1; }

// The first rule whose suffix matches decides: if its condition fails, no later rule is tried.
template <size_t N>
std::string apply_first_rule(const std::string& word, const Rule (&rules)[N]) {
  for (const Rule& rule : rules) {
    if (!ends_with(word, rule.suffix)) continue;
    const std::string_view stem = std::string_view(word).substr(0, word.size() - rule.suffix.size());
    if (rule.condition && !rule.condition(stem, word)) return word;
    return std::string(stem) + std::string(rule.replacement);
  }
  return word;
}

std::string replace_suffix(const std::string& word, size_t suffix_length, std::string_view replacement) {
  return word.substr(0, word.size() - suffix_length) + std::string(replacement);
}

std::string step1a(const std::string& word) {
  if (word.size() == 4 && ends_with(word, "ies")) return replace_suffix(word, 3, "ie");  // dies → die
  static const Rule rules[] = {
      {"sses", "ss", nullptr}, {"ies", "i", nullptr}, {"ss", "ss", nullptr}, {"s", "", nullptr}};
  return apply_first_rule(word, rules);
}

std::string step1b(const std::string& word) {
  if (ends_with(word, "ied")) return replace_suffix(word, 3, word.size() == 4 ? "ie" : "i");  // died, spied
  if (ends_with(word, "eed")) {
    const std::string stem = word.substr(0, word.size() - 3);
    return measure(stem) > 0 ? stem + "ee" : word;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(word, suffix)) {
      stem = word.substr(0, word.size() - suffix.size());
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return word;
  // Tidy the stem: restore the e of -ate/-ble/-ize, undouble, or add e to a short cvc stem.
  for (std::string_view suffix : {std::string_view("at"), std::string_view("bl"), std::string_view("iz")})
    if (ends_with(stem, suffix)) return stem + "e";
  if (ends_double_consonant(stem)) {
    const char last = stem.back();
    return last == 'l' || last == 's' || last == 'z' ? stem : stem.substr(0, stem.size() - 1);
  }
  return measure(stem) == 1 && ends_cvc(stem) ? stem + "e" : stem;
}

std::string step1c(const std::string& word) {
  // NLTK: y → i only after a consonant that is not the whole stem (happy → happi, enjoy stays).
  static const Rule rules[] = {{"y", "i", [](std::string_view stem, std::string_view) {
                                  return stem.size() > 1 && is_consonant(stem, stem.size() - 1);
                                }}};
  return apply_first_rule(word, rules);
}

std::string step2(const std::string& word) {
  // NLTK applies alli → al first and, when it fires, runs step 2 again on the result.
  if (ends_with(word, "alli") && measure(std::string_view(word).substr(0, word.size() - 4)) > 0)
    return step2(replace_suffix(word, 4, "al"));
  static const Rule rules[] = {
      {"ational", "ate", measure_above_0},
      {"tional", "tion", measure_above_0},
      {"enci", "ence", measure_above_0},
      {"anci", "ance", measure_above_0},
      {"izer", "ize", measure_above_0},
      {"bli", "ble", measure_above_0},
      {"alli", "al", measure_above_0},
      {"entli", "ent", measure_above_0},
      {"eli", "e", measure_above_0},
      {"ousli", "ous", measure_above_0},
      {"ization", "ize", measure_above_0},
      {"ation", "ate", measure_above_0},
      {"ator", "ate", measure_above_0},
      {"alism", "al", measure_above_0},
      {"iveness", "ive", measure_above_0},
      {"fulness", "ful", measure_above_0},
      {"ousness", "ous", measure_above_0},
      {"aliti", "al", measure_above_0},
      {"iviti", "ive", measure_above_0},
      {"biliti", "ble", measure_above_0},
      {"fulli", "ful", measure_above_0},
      // The l of -logi stays with the stem, so short stems (geo-, theo-) qualify.
      {"logi", "log", [](std::string_view, std::string_view w) { return measure(w.substr(0, w.size() - 3)) > 0; }},
  };
  return apply_first_rule(word, rules);
}

std::string step3(const std::string& word) {
  static const Rule rules[] = {
      {"icate", "ic", measure_above_0}, {"ative", "", measure_above_0},  {"alize", "al", measure_above_0},
      {"iciti", "ic", measure_above_0}, {"ical", "ic", measure_above_0}, {"ful", "", measure_above_0},
      {"ness", "", measure_above_0},
  };
  return apply_first_rule(word, rules);
}

std::string step4(const std::string& word) {
  static const Rule rules[] = {
      {"al", "", measure_above_1},
      {"ance", "", measure_above_1},
      {"ence", "", measure_above_1},
      {"er", "", measure_above_1},
      {"ic", "", measure_above_1},
      {"able", "", measure_above_1},
      {"ible", "", measure_above_1},
      {"ant", "", measure_above_1},
      {"ement", "", measure_above_1},
      {"ment", "", measure_above_1},
      {"ent", "", measure_above_1},
      {"ion", "",
       [](std::string_view stem, std::string_view) {
         return measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
       }},
      {"ou", "", measure_above_1},
      {"ism", "", measure_above_1},
      {"ate", "", measure_above_1},
      {"iti", "", measure_above_1},
      {"ous", "", measure_above_1},
      {"ive", "", measure_above_1},
      {"ize", "", measure_above_1},
  };
  return apply_first_rule(word, rules);
}

std::string step5a(const std::string& word) {
  // Both conditions are tried (unlike a rule list): m>1, or m=1 and not *o.
  if (!ends_with(word, "e")) return word;
  const std::string stem = word.substr(0, word.size() - 1);
  const int m = measure(stem);
  return m > 1 || (m == 1 && !ends_cvc(stem)) ? stem : word;
}

std::string step5b(const std::string& word) {
  static const Rule rules[] = {
      {"ll", "l", [](std::string_view, std::string_view w) { return measure(w.substr(0, w.size() - 1)) > 1; }}};
  return apply_first_rule(word, rules);
}

// NLTK_EXTENSIONS' table of irregular forms, returned without stemming.
const std::unordered_map<std::string_view, std::string_view>& irregular_forms() {
  static const std::unordered_map<std::string_view, std::string_view> forms = {
      {"sky", "sky"},        {"skies", "sky"},       {"dying", "die"},        {"lying", "lie"},
      {"tying", "tie"},      {"news", "news"},       {"innings", "inning"},   {"inning", "inning"},
      {"outings", "outing"}, {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},      {"proceed", "proceed"}, {"exceed", "exceed"},    {"succeed", "succeed"},
  };
  return forms;
}

// ---------------------------------------------------------------------------------------------
// Scores.

double f_measure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

// Tokens as small integers, so n-grams and the LCS compare ints instead of strings.
struct TokenIds {
  std::vector<int> target, prediction;
};

TokenIds to_ids(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  std::unordered_map<std::string_view, int> ids;
  auto convert = [&ids](const std::vector<std::string>& tokens) {
    std::vector<int> out;
    out.reserve(tokens.size());
    for (const std::string& token : tokens) out.push_back(ids.emplace(token, int(ids.size())).first->second);
    return out;
  };
  TokenIds result;
  result.target = convert(target);
  result.prediction = convert(prediction);
  return result;
}

using TokenIterator = std::vector<int>::const_iterator;

bool ngram_less(TokenIterator a, TokenIterator b, size_t n) { return std::lexicographical_compare(a, a + n, b, b + n); }

// The n-grams of `ids` as start positions, sorted by their content.
std::vector<size_t> sorted_ngrams(const std::vector<int>& ids, size_t n) {
  std::vector<size_t> starts;
  for (size_t i = 0; i + n <= ids.size(); ++i) starts.push_back(i);
  std::sort(starts.begin(), starts.end(),
            [&ids, n](size_t a, size_t b) { return ngram_less(ids.begin() + a, ids.begin() + b, n); });
  return starts;
}

// rouge_scorer._score_ngrams: the clipped overlap sum over n-grams of min(target count,
// prediction count), which is the size of the multiset intersection of the two sorted lists.
RougeScore rouge_n(const TokenIds& tokens, size_t n) {
  const std::vector<size_t> target = sorted_ngrams(tokens.target, n);
  const std::vector<size_t> prediction = sorted_ngrams(tokens.prediction, n);
  size_t overlap = 0;
  for (size_t t = 0, p = 0; t < target.size() && p < prediction.size();) {
    const auto target_ngram = tokens.target.begin() + target[t];
    const auto prediction_ngram = tokens.prediction.begin() + prediction[p];
    if (ngram_less(target_ngram, prediction_ngram, n)) {
      ++t;
    } else if (ngram_less(prediction_ngram, target_ngram, n)) {
      ++p;
    } else {
      ++overlap, ++t, ++p;
    }
  }
  RougeScore score;
  score.precision = double(overlap) / double(std::max<size_t>(prediction.size(), 1));
  score.recall = double(overlap) / double(std::max<size_t>(target.size(), 1));
  score.fmeasure = f_measure(score.precision, score.recall);
  return score;
}

size_t lcs_length(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<size_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (int token : a) {
    for (size_t j = 1; j <= b.size(); ++j)
      current[j] = token == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// rouge_scorer._score_lcs: all zero when either side has no token.
RougeScore rouge_l(const TokenIds& tokens) {
  RougeScore score;
  if (tokens.target.empty() || tokens.prediction.empty()) return score;
  const double lcs = double(lcs_length(tokens.target, tokens.prediction));
  score.precision = lcs / double(tokens.prediction.size());
  score.recall = lcs / double(tokens.target.size());
  score.fmeasure = f_measure(score.precision, score.recall);
  return score;
}

bool is_token_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool at(const std::string& text, size_t i, std::string_view bytes) { return text.compare(i, bytes.size(), bytes) == 0; }

}  // namespace

std::string porter_stem(const std::string& word) {
  std::string stem = word;
  for (char& c : stem)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  const auto irregular = irregular_forms().find(stem);
  if (irregular != irregular_forms().end()) return std::string(irregular->second);
  if (stem.size() <= 2) return stem;  // NLTK leaves one- and two-letter words alone
  for (auto step : {step1a, step1b, step1c, step2, step3, step4, step5a, step5b}) stem = step(stem);
  return stem;
}

std::vector<std::string> RougeScorer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  std::string word;
  auto end_word = [&] {
    if (word.empty()) return;
    // rouge-score only stems words longer than 3 characters.
    std::string token = use_stemmer_ && word.size() > 3 ? porter_stem(word) : word;
    if (!token.empty() && std::all_of(token.begin(), token.end(), is_token_char)) tokens.push_back(std::move(token));
    word.clear();
  };
  // Byte-wise is exact for valid UTF-8: a lead byte never occurs inside another character, so
  // the two sequences below only match whole characters; all other non-ASCII bytes separate.
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) < 0x80) {
      const char lower = c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
      if (is_token_char(lower)) {
        word += lower;
      } else {
        end_word();
      }
      i += 1;
    } else if (at(text, i, "\xC4\xB0")) {  // U+0130 → "i" + U+0307, which separates
      word += 'i';
      end_word();
      i += 2;
    } else if (at(text, i, "\xE2\x84\xAA")) {  // U+212A KELVIN SIGN → "k"
      word += 'k';
      i += 3;
    } else {
      end_word();
      i += 1;
    }
  }
  end_word();
  return tokens;
}

RougeScores RougeScorer::score(const std::string& target, const std::string& prediction) const {
  const TokenIds tokens = to_ids(tokenize(target), tokenize(prediction));
  RougeScores scores;
  scores.rouge1 = rouge_n(tokens, 1);
  scores.rouge2 = rouge_n(tokens, 2);
  scores.rougeL = rouge_l(tokens);
  return scores;
}

RougeScores RougeScorer::mean_score(const std::vector<std::string>& targets,
                                    const std::vector<std::string>& predictions) const {
  if (targets.size() != predictions.size())
    throw InputError("", "predictions",
                     std::to_string(predictions.size()) + " predictions for " + std::to_string(targets.size()) +
                         " references (expected one each)");
  std::vector<RougeScores> per_pair;
  per_pair.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) per_pair.push_back(score(targets[i], predictions[i]));
  return mean_scores(per_pair);
}

RougeScores mean_scores(const std::vector<RougeScores>& per_pair) {
  if (per_pair.empty()) throw InputError("", "predictions", "no pair to average ROUGE over");
  RougeScores mean;
  auto accumulate = [](RougeScore& total, const RougeScore& one) {
    total.precision += one.precision;
    total.recall += one.recall;
    total.fmeasure += one.fmeasure;
  };
  for (const RougeScores& s : per_pair) {
    accumulate(mean.rouge1, s.rouge1);
    accumulate(mean.rouge2, s.rouge2);
    accumulate(mean.rougeL, s.rougeL);
  }
  const double count = double(per_pair.size());
  for (RougeScore* total : {&mean.rouge1, &mean.rouge2, &mean.rougeL}) {
    total->precision /= count;
    total->recall /= count;
    total->fmeasure /= count;
  }
  return mean;
}

}  // namespace gqa
