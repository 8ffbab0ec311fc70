// Byte-level BPE as HF tokenizers runs it: added-token split, pre-tokenizer pipeline (Split
// regexes, ByteLevel), BPE merges by rank, template post-processing, ByteLevel decoding.
#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tokenizers/added_vocab.h"
#include "core/tokenizers/loaders.h"
#include "core/tokenizers/regex.h"
#include "core/tokenizers/unicode.h"

namespace gqa::tok {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex=true).
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Larger vocabularies than this many ids are refused (the id table is dense).
constexpr int64_t kMaxVocabId = (int64_t{1} << 31) - 2;

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

// ---------------------------------------------------------------------------------------------
// The BPE model: vocabulary, merge ranks and HF's merge loop (tokenizers/src/models/bpe/word.rs).

struct MergeInfo {
  int32_t rank;
  int32_t new_id;
};

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

class BpeModel {
 public:
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;  // "" where the vocabulary has no id
  std::unordered_map<uint64_t, MergeInfo> merges;
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;

  // Builds id_to_token from vocab; throws on ids that cannot index a dense table.
  void index_vocab(const std::string& file, const std::string& field) {
    int64_t max_id = -1;
    for (const auto& [tok, id] : vocab) max_id = std::max<int64_t>(max_id, id);
    // A dense id table is kept; ids far beyond the vocabulary size are surely corrupt.
    const int64_t limit = 4 * int64_t(vocab.size()) + (int64_t{1} << 20);
    if (max_id >= limit) {
      throw InputError(file, field,
                       "id " + std::to_string(max_id) + " out of range for a vocabulary of " +
                           std::to_string(vocab.size()) + " tokens");
    }
    id_to_token.assign(size_t(max_id + 1), std::string());
    for (const auto& [tok, id] : vocab) id_to_token[size_t(id)] = tok;
  }

  // merges[rank] = (a, b); as HF: both parts and their concatenation must be in the vocabulary,
  // and a repeated pair keeps its last rank.
  void set_merges(const std::vector<std::pair<std::string, std::string>>& list, const std::string& file,
                  const std::string& field) {
    merges.reserve(list.size());
    for (size_t rank = 0; rank < list.size(); ++rank) {
      const auto& [a, b] = list[rank];
      const auto ia = vocab.find(a), ib = vocab.find(b);
      const std::string where = field + "[" + std::to_string(rank) + "]";
      if (ia == vocab.end()) throw InputError(file, where, "token " + in_quotes(a) + " not in vocab");
      if (ib == vocab.end()) throw InputError(file, where, "token " + in_quotes(b) + " not in vocab");
      std::string merged = a;
      if (!continuing_subword_prefix.empty() &&
          b.compare(0, continuing_subword_prefix.size(), continuing_subword_prefix) == 0) {
        merged += b.substr(continuing_subword_prefix.size());
      } else {
        merged += b;
      }
      const auto im = vocab.find(merged);
      if (im == vocab.end()) {
        throw InputError(file, where, "merged token " + in_quotes(merged) + " not in vocab");
      }
      merges[pair_key(ia->second, ib->second)] = {int32_t(rank), im->second};
    }
  }

  // One pre-tokenized word, already in the model's alphabet (byte-level characters), to ids.
  void tokenize(std::string_view w, std::vector<int32_t>* out) const {
    if (w.empty()) return;
    if (ignore_merges) {
      const auto it = vocab.find(std::string(w));
      if (it != vocab.end()) {
        out->push_back(it->second);
        return;
      }
    }
    std::vector<Symbol> symbols;
    symbols.reserve(w.size());
    initial_symbols(w, &symbols);
    merge_all(&symbols);
    for (const auto& s : symbols) {
      if (!s.removed) out->push_back(s.id);
    }
  }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool removed;
  };

  void add_symbol(std::vector<Symbol>* symbols, int32_t id) const {
    const auto n = int32_t(symbols->size());
    if (n > 0) (*symbols)[n - 1].next = n;
    symbols->push_back({id, n - 1, -1, false});
  }

  // Characters to ids, with byte fallback and (fused) unknown tokens as BPE::merge_word does.
  void initial_symbols(std::string_view w, std::vector<Symbol>* symbols) const {
    std::optional<int32_t> unk_id;
    if (unk_token) {
      const auto it = vocab.find(*unk_token);
      if (it != vocab.end()) unk_id = it->second;
    }
    bool pending_unk = false;
    size_t i = 0;
    std::string s;
    while (i < w.size()) {
      uint32_t cp = 0;
      const size_t n = utf8_next(w, i, &cp);
      const bool first = i == 0, last = i + n >= w.size();
      s.assign(w.data() + i, n);
      if (!first && !continuing_subword_prefix.empty()) s = continuing_subword_prefix + s;
      if (last && !end_of_word_suffix.empty()) s += end_of_word_suffix;
      i += n;
      const auto it = vocab.find(s);
      if (it != vocab.end()) {
        if (pending_unk) add_symbol(symbols, *unk_id);
        pending_unk = false;
        add_symbol(symbols, it->second);
        continue;
      }
      if (byte_fallback) {
        std::vector<int32_t> bytes;
        for (unsigned char b : s) {
          static const char* hex = "0123456789ABCDEF";
          const std::string code = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
          const auto ib = vocab.find(code);
          if (ib == vocab.end()) break;
          bytes.push_back(ib->second);
        }
        if (bytes.size() == s.size()) {
          for (int32_t id : bytes) add_symbol(symbols, id);
          continue;
        }
      }
      if (unk_id) {  // otherwise HF silently drops the character
        if (pending_unk && !fuse_unk) add_symbol(symbols, *unk_id);
        pending_unk = true;
      }
    }
    if (pending_unk) add_symbol(symbols, *unk_id);
  }

  // Word::merge_all: lowest rank first, ties broken by position; stale queue entries skipped.
  void merge_all(std::vector<Symbol>* symbols_ptr) const {
    auto& sym = *symbols_ptr;
    struct Entry {
      int32_t rank;
      int32_t pos;
      int32_t new_id;
    };
    const auto later = [](const Entry& x, const Entry& y) {
      return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    std::priority_queue<Entry, std::vector<Entry>, decltype(later)> queue(later);
    const auto lookup = [&](int32_t a, int32_t b) -> const MergeInfo* {
      const auto it = merges.find(pair_key(a, b));
      return it == merges.end() ? nullptr : &it->second;
    };
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      if (const MergeInfo* m = lookup(sym[i].id, sym[i + 1].id)) {
        queue.push({m->rank, int32_t(i), m->new_id});
      }
    }
    while (!queue.empty()) {
      const Entry top = queue.top();
      queue.pop();
      Symbol& cur = sym[top.pos];
      if (cur.removed || cur.next < 0) continue;
      const int32_t next_pos = cur.next;
      const Symbol right = sym[next_pos];
      const MergeInfo* m = lookup(cur.id, right.id);
      if (m == nullptr || m->new_id != top.new_id) continue;  // expired entry
      cur.id = top.new_id;
      cur.next = right.next;
      sym[next_pos].removed = true;
      if (right.next >= 0) sym[right.next].prev = top.pos;
      if (cur.prev >= 0) {
        if (const MergeInfo* p = lookup(sym[cur.prev].id, cur.id)) {
          queue.push({p->rank, cur.prev, p->new_id});
        }
      }
      if (cur.next >= 0) {
        if (const MergeInfo* n = lookup(cur.id, sym[cur.next].id)) {
          queue.push({n->rank, top.pos, n->new_id});
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer steps.

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  // Split with a regex, or ByteLevel with use_regex
  std::string literal;                 // Split with a plain string
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
};

// NormalizedString::split: the text cut into matches and gaps, then grouped by `behavior`;
// empty pieces are dropped.
void split_piece(std::string_view s, const PreTokStep& step, std::vector<std::string_view>* out) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (step.regex) {
    step.regex->find_all(s, &matches);
  } else if (!step.literal.empty()) {
    size_t pos = 0;
    while ((pos = s.find(step.literal, pos)) != std::string_view::npos) {
      matches.emplace_back(pos, pos + step.literal.size());
      pos += step.literal.size();
    }
  }
  // Fast path for the common case.
  if (step.behavior == Behavior::kIsolated && !step.invert) {
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
      if (b > prev) out->push_back(s.substr(prev, b - prev));
      out->push_back(s.substr(b, e - b));
      prev = e;
    }
    if (prev < s.size()) out->push_back(s.substr(prev));
    return;
  }
  struct Part {
    size_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev < s.size()) parts.push_back({prev, s.size(), false});
  if (step.invert) {
    for (auto& p : parts) p.is_match = !p.is_match;
  }
  std::vector<std::pair<size_t, size_t>> pieces;
  switch (step.behavior) {
    case Behavior::kRemoved:
      for (const auto& p : parts) {
        if (!p.is_match) pieces.emplace_back(p.b, p.e);
      }
      break;
    case Behavior::kIsolated:
      for (const auto& p : parts) pieces.emplace_back(p.b, p.e);
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !previous_match && !pieces.empty()) {
          pieces.back().second = p.e;
        } else {
          pieces.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().first = it->b;
        } else {
          pieces.emplace_back(it->b, it->e);
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match == previous_match && !pieces.empty()) {
          pieces.back().second = p.e;
        } else {
          pieces.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
  }
  for (const auto& [b, e] : pieces) {
    if (e > b) out->push_back(s.substr(b, e - b));
  }
}

// ---------------------------------------------------------------------------------------------
// The tokenizer.

class BpeTokenizer final : public Tokenizer {
 public:
  BpeModel model;
  AddedVocab added;
  std::vector<PreTokStep> steps;

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    // ByteLevel decoder over every token (added ones too, as HF does), then lossy UTF-8.
    std::string bytes;
    for (int64_t id : ids) {
      const std::string* token = nullptr;
      if (const AddedToken* t = added.by_id(id)) {
        if (skip_special && t->special) continue;
        token = &t->content;
      } else if (id >= 0 && id < int64_t(model.id_to_token.size()) && !model.id_to_token[size_t(id)].empty()) {
        token = &model.id_to_token[size_t(id)];
      } else {
        continue;  // unknown ids are skipped, as HF does
      }
      size_t i = 0;
      while (i < token->size()) {
        uint32_t cp = 0;
        const size_t n = utf8_next(*token, i, &cp);
        const int b = cp == 0xFFFFFFFFu ? -1 : unicode_to_byte(cp);
        if (b >= 0) {
          bytes += char(b);
        } else {
          bytes.append(*token, i, n);
        }
        i += n;
      }
    }
    return utf8_lossy(bytes);
  }

  bool byte_level() const {
    return std::any_of(steps.begin(), steps.end(),
                       [](const PreTokStep& s) { return s.kind == PreTokStep::Kind::kByteLevel; });
  }

 private:
  void encode_into(const std::string& text, std::vector<int64_t>* out) const override {
    std::vector<std::string_view> words;
    std::deque<std::string> store;  // owns pieces that got a prefix space
    std::vector<int32_t> ids;
    std::string mapped;
    const auto& table = byte_to_unicode();
    for (const auto& piece : added.split(text)) {
      if (piece.id >= 0) {
        out->push_back(piece.id);
        continue;
      }
      words.clear();
      store.clear();
      pre_tokenize(piece.text, &words, &store);
      for (std::string_view w : words) {
        // The cache is keyed by the raw bytes; the model sees them through bytes_to_unicode.
        std::string key(w);
        {
          std::lock_guard<std::mutex> lock(cache_mu_);
          const auto it = cache_.find(key);
          if (it != cache_.end()) {
            out->insert(out->end(), it->second.begin(), it->second.end());
            continue;
          }
        }
        mapped.clear();
        for (unsigned char b : w) mapped += table[b];
        ids.clear();
        model.tokenize(mapped, &ids);
        out->insert(out->end(), ids.begin(), ids.end());
        std::lock_guard<std::mutex> lock(cache_mu_);
        if (cache_.size() >= kCacheLimit) cache_.clear();
        cache_.emplace(std::move(key), ids);
      }
    }
  }

  void pre_tokenize(std::string_view text, std::vector<std::string_view>* words, std::deque<std::string>* store) const {
    std::vector<std::string_view> cur{text}, next;
    for (const auto& step : steps) {
      next.clear();
      for (std::string_view s : cur) {
        if (step.kind == PreTokStep::Kind::kByteLevel) {
          if (step.add_prefix_space && (s.empty() || s[0] != ' ')) {
            store->push_back(" " + std::string(s));
            s = store->back();
          }
          if (step.regex) {
            split_piece(s, step, &next);
          } else if (!s.empty()) {
            next.push_back(s);
          }
        } else {
          split_piece(s, step, &next);
        }
      }
      cur.swap(next);
    }
    for (std::string_view s : cur) {
      if (!s.empty()) words->push_back(s);
    }
  }

  static constexpr size_t kCacheLimit = size_t{1} << 20;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// ---------------------------------------------------------------------------------------------
// Loading.

std::string get_type(const json& j) {
  const auto it = j.find("type");
  return j.is_object() && it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void parse_pre_tokenizer(const json& j, const std::string& path, const std::string& field,
                         std::vector<PreTokStep>* steps) {
  if (j.is_null()) return;
  const std::string type = get_type(j);
  if (type == "Sequence") {
    const auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      throw InputError(path, field + ".pretokenizers", "expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      parse_pre_tokenizer((*it)[i], path, field + ".pretokenizers[" + std::to_string(i) + "]", steps);
    }
    return;
  }
  if (!steps->empty() && steps->back().kind == PreTokStep::Kind::kByteLevel) {
    throw InputError(path, field, "a pre-tokenizer after ByteLevel is not supported");
  }
  PreTokStep step;
  if (type == "ByteLevel") {
    step.kind = PreTokStep::Kind::kByteLevel;
    step.add_prefix_space = json_bool(j, "add_prefix_space", true);
    if (json_bool(j, "use_regex", true)) step.regex = std::make_shared<Regex>(kGpt2Pattern);
  } else if (type == "Split") {
    const auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object()) {
      throw InputError(path, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    if (pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      try {
        step.regex = std::make_shared<Regex>((*pat)["Regex"].get<std::string>());
      } catch (const std::invalid_argument& e) {
        throw InputError(path, field + ".pattern.Regex", e.what());
      }
    } else if (pat->contains("String") && (*pat)["String"].is_string()) {
      step.literal = (*pat)["String"].get<std::string>();
    } else {
      throw InputError(path, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    static const std::pair<const char*, Behavior> kBehaviors[] = {{"Removed", Behavior::kRemoved},
                                                                  {"Isolated", Behavior::kIsolated},
                                                                  {"MergedWithPrevious", Behavior::kMergedWithPrevious},
                                                                  {"MergedWithNext", Behavior::kMergedWithNext},
                                                                  {"Contiguous", Behavior::kContiguous}};
    bool known = false;
    for (const auto& [name, b] : kBehaviors) {
      if (behavior == name) {
        step.behavior = b;
        known = true;
      }
    }
    if (!known) throw InputError(path, field + ".behavior", "unknown behavior " + in_quotes(behavior));
    step.invert = json_bool(j, "invert", false);
  } else {
    throw InputError(path, field,
                     "pre-tokenizer type " + in_quotes(type) +
                         " is not supported (byte-level BPE needs ByteLevel, Split, Sequence)");
  }
  steps->push_back(std::move(step));
}

// Resolves a token string to its id through the added tokens, then the model vocabulary.
std::optional<int64_t> token_id(const BpeTokenizer& t, const std::string& content) {
  if (const AddedToken* a = t.added.by_content(content)) return a->id;
  const auto it = t.model.vocab.find(content);
  if (it != t.model.vocab.end()) return it->second;
  return std::nullopt;
}

// A special id of a post-processor must name a token: beyond the vocabulary it would index past
// the model's embedding table.
int64_t special_id(int64_t id, const BpeTokenizer& t, const std::string& path, const std::string& field) {
  if (id < 0 || id >= t.size) {
    throw InputError(path, field,
                     "id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(t.size) + " ids)");
  }
  return id;
}

// The special ids around $A in a post_processor (TemplateProcessing, Roberta/BertProcessing,
// ByteLevel, Sequence of those).
void parse_post_processor(const json& j, const std::string& path, const std::string& field, const BpeTokenizer& t,
                          std::vector<int64_t>* prefix, std::vector<int64_t>* suffix) {
  if (j.is_null()) return;
  const std::string type = get_type(j);
  if (type == "ByteLevel") return;  // only offsets
  if (type == "Sequence") {
    const auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) {
      throw InputError(path, field + ".processors", "expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      parse_post_processor((*it)[i], path, field + ".processors[" + std::to_string(i) + "]", t, prefix, suffix);
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto id_of = [&](const char* key) -> int64_t {
      const auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
        throw InputError(path, field + "." + key, "expected [token, id]");
      }
      return special_id((*it)[1].get<int64_t>(), t, path, field + "." + key);
    };
    prefix->push_back(id_of("cls"));
    suffix->insert(suffix->begin(), id_of("sep"));
    return;
  }
  if (type == "TemplateProcessing") {
    const auto single = j.find("single");
    if (single == j.end() || !single->is_array()) {
      throw InputError(path, field + ".single", "expected an array");
    }
    const json specials = j.value("special_tokens", json::object());
    bool seen_a = false;
    std::vector<int64_t> pre, post;
    for (const auto& item : *single) {
      if (item.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      const auto st = item.find("SpecialToken");
      if (st == item.end() || !st->contains("id") || !(*st)["id"].is_string()) {
        throw InputError(path, field + ".single", "expected SpecialToken or Sequence items");
      }
      const std::string name = (*st)["id"].get<std::string>();
      std::vector<int64_t> ids;
      const auto sp = specials.find(name);
      if (sp != specials.end() && sp->contains("ids") && (*sp)["ids"].is_array()) {
        for (const auto& v : (*sp)["ids"]) {
          if (!v.is_number_integer()) {
            throw InputError(path, field + ".special_tokens." + name, "ids must be integers");
          }
          ids.push_back(special_id(v.get<int64_t>(), t, path, field + ".special_tokens." + name));
        }
      } else if (const auto id = token_id(t, name)) {
        ids.push_back(*id);
      } else {
        throw InputError(path, field + ".special_tokens", "no ids for " + in_quotes(name));
      }
      (seen_a ? post : pre).insert((seen_a ? post : pre).end(), ids.begin(), ids.end());
    }
    prefix->insert(prefix->end(), pre.begin(), pre.end());
    suffix->insert(suffix->end(), post.begin(), post.end());
    return;
  }
  throw InputError(path, field, "post-processor type " + in_quotes(type) + " is not supported");
}

// BOS/EOS/PAD and what encode_with_special adds, following transformers 5: the tokenizer.json
// post-processor unless tokenizer_config.json sets add_bos_token/add_eos_token (or there is no
// post-processor), in which case those flags decide.
void resolve_specials(BpeTokenizer* t, const FolderConfig& fc, const json* post_processor, const std::string& path,
                      const std::string& class_default) {
  const auto resolve = [&](const std::string& key) -> std::optional<int64_t> {
    if (const auto tok = fc.token(key)) {
      return *tok ? token_id(*t, **tok) : std::nullopt;  // explicitly null: none
    }
    if (!class_default.empty()) {  // GPT2Tokenizer's defaults for bos/eos/unk
      if (key != "pad_token") return token_id(*t, class_default);
      return std::nullopt;
    }
    if (const auto id = fc.config_id(key + "_id")) {
      if (*id >= 0 && *id < t->size) return id;
    }
    return std::nullopt;
  };
  t->bos = resolve("bos_token");
  t->eos = resolve("eos_token");
  t->pad = resolve("pad_token");

  const auto add_bos = fc.flag("add_bos_token"), add_eos = fc.flag("add_eos_token");
  if (add_bos || add_eos || post_processor == nullptr || post_processor->is_null()) {
    if (add_bos.value_or(false) && t->bos) t->prefix_ids.push_back(*t->bos);
    if (add_eos.value_or(false) && t->eos) t->suffix_ids.push_back(*t->eos);
  } else {
    parse_post_processor(*post_processor, path, "post_processor", *t, &t->prefix_ids, &t->suffix_ids);
  }
  // Without tokenizer_config.json the template is the best witness of BOS/EOS.
  if (!t->bos && !fc.token("bos_token") && !t->prefix_ids.empty()) t->bos = t->prefix_ids.front();
  if (!t->eos && !fc.token("eos_token") && !t->suffix_ids.empty()) t->eos = t->suffix_ids.back();
}

void finish(BpeTokenizer* t) {
  t->added.build();
  t->size = std::max<int64_t>(int64_t(t->model.id_to_token.size()), t->added.max_id() + 1);
}

int32_t vocab_id(const json& v, const std::string& path, const std::string& field) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxVocabId) {
    throw InputError(path, field, "id must be an integer in [0, 2^31)");
  }
  return int32_t(v.get<int64_t>());
}

void read_vocab_object(const json& j, const std::string& path, const std::string& field, BpeModel* model) {
  if (!j.is_object()) {
    throw InputError(path, field, "expected a JSON object mapping token to id");
  }
  model->vocab.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    model->vocab[it.key()] = vocab_id(it.value(), path, field + "[" + in_quotes(it.key()) + "]");
  }
  model->index_vocab(path, field);
}

std::unique_ptr<Tokenizer> load_vocab_merges_impl(const std::string& vocab_path, const std::string& merges_path,
                                                  const FolderConfig& fc);

}  // namespace

bool has_byte_level_pre_tokenizer(const json& tokenizer_json) {
  const auto it = tokenizer_json.find("pre_tokenizer");
  if (it == tokenizer_json.end()) return false;
  const std::function<bool(const json&)> walk = [&](const json& j) -> bool {
    const std::string type = get_type(j);
    if (type == "ByteLevel") return true;
    if (type == "Sequence" && j.contains("pretokenizers") && j["pretokenizers"].is_array()) {
      for (const auto& p : j["pretokenizers"]) {
        if (walk(p)) return true;
      }
    }
    return false;
  };
  return walk(*it);
}

std::unique_ptr<Tokenizer> load_bpe_from_tokenizer_json(const std::string& path, const json& j,
                                                        const FolderConfig& fc) {
  auto t = std::make_unique<BpeTokenizer>();
  try {
    const auto model_it = j.find("model");
    if (model_it == j.end() || !model_it->is_object()) {
      throw InputError(path, "model", "missing model object");
    }
    const json& m = *model_it;
    if (get_type(m) != "BPE" && !(get_type(m).empty() && m.contains("merges"))) {
      throw InputError(path, "model.type", "expected \"BPE\", got " + in_quotes(get_type(m)));
    }
    BpeModel& model = t->model;
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      model.unk_token = m["unk_token"].get<std::string>();
    }
    model.fuse_unk = json_bool(m, "fuse_unk", false);
    model.byte_fallback = json_bool(m, "byte_fallback", false);
    model.ignore_merges = json_bool(m, "ignore_merges", false);
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string()) {
      model.continuing_subword_prefix = m["continuing_subword_prefix"].get<std::string>();
    }
    if (m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string()) {
      model.end_of_word_suffix = m["end_of_word_suffix"].get<std::string>();
    }
    if (!m.contains("vocab")) throw InputError(path, "model.vocab", "missing");
    read_vocab_object(m["vocab"], path, "model.vocab", &model);

    // Merges: ["a b", ...] (older files) or [["a", "b"], ...].
    const auto merges_it = m.find("merges");
    if (merges_it == m.end() || !merges_it->is_array()) {
      throw InputError(path, "model.merges", "expected an array");
    }
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(merges_it->size());
    for (size_t i = 0; i < merges_it->size(); ++i) {
      const json& e = (*merges_it)[i];
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          throw InputError(path, where, "expected \"a b\" (two tokens), got " + in_quotes(s));
        }
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        throw InputError(path, where, "expected \"a b\" or [\"a\", \"b\"]");
      }
    }
    model.set_merges(merges, path, "model.merges");

    const auto norm = j.find("normalizer");
    if (norm != j.end() && !norm->is_null()) {
      const bool empty_seq = get_type(*norm) == "Sequence" && norm->contains("normalizers") &&
                             (*norm)["normalizers"].is_array() && (*norm)["normalizers"].empty();
      if (!empty_seq) {
        throw InputError(
            path, "normalizer",
            "normalizer " + in_quotes(get_type(*norm)) + " is not supported for byte-level BPE (only null)");
      }
    }
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), path, "pre_tokenizer", &t->steps);
    if (!t->byte_level()) {
      throw InputError(path, "pre_tokenizer", "BPE without a ByteLevel pre-tokenizer");
    }

    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
      const json& at = j["added_tokens"];
      if (!at.is_array()) throw InputError(path, "added_tokens", "expected an array");
      for (size_t i = 0; i < at.size(); ++i) {
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        const json& a = at[i];
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id")) {
          throw InputError(path, where, "expected {\"id\": int, \"content\": string, ...}");
        }
        t->added.add(added_token(a, a["content"].get<std::string>(), vocab_id(a["id"], path, where + ".id")));
      }
    }
    finish(t.get());
    const auto post = j.find("post_processor");
    resolve_specials(t.get(), fc, post == j.end() ? nullptr : &*post, path, "");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "", std::string("unexpected JSON content: ") + e.what());
  }
  return t;
}

std::unique_ptr<Tokenizer> load_bpe_from_vocab_merges(const std::string& vocab_path, const std::string& merges_path,
                                                      const FolderConfig& fc) {
  try {
    return load_vocab_merges_impl(vocab_path, merges_path, fc);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(vocab_path, "", std::string("unexpected JSON content: ") + e.what());
  }
}

namespace {
std::unique_ptr<Tokenizer> load_vocab_merges_impl(const std::string& vocab_path, const std::string& merges_path,
                                                  const FolderConfig& fc) {
  auto t = std::make_unique<BpeTokenizer>();
  const json vocab = read_json(vocab_path);
  read_vocab_object(vocab, vocab_path, "", &t->model);

  // merges.txt: optional "#version" line, then "a b" per line (HF requires exactly two parts).
  const std::string text = read_file(merges_path);
  std::vector<std::pair<std::string, std::string>> merges;
  size_t start = 0, line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
      throw InputError(merges_path, "line " + std::to_string(line_no),
                       "expected two tokens separated by one space, got " + in_quotes(line));
    }
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  t->model.set_merges(merges, merges_path, "merges");

  // GPT2Tokenizer: ByteLevel(add_prefix_space from tokenizer_config.json, default false).
  PreTokStep step;
  step.kind = PreTokStep::Kind::kByteLevel;
  step.add_prefix_space = fc.flag("add_prefix_space").value_or(false);
  step.regex = std::make_shared<Regex>(kGpt2Pattern);
  t->steps.push_back(std::move(step));

  // Its special tokens (<|endoftext|> by default) are split out of the text like HF's.
  const std::string endoftext = "<|endoftext|>";
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    std::optional<std::string> content;
    if (const auto tok = fc.token(key)) {
      content = *tok;
    } else if (std::string(key) != "pad_token") {
      content = endoftext;
    }
    if (!content) continue;
    const auto it = t->model.vocab.find(*content);
    if (it == t->model.vocab.end()) continue;
    AddedToken a;
    a.content = *content;
    a.id = it->second;
    a.special = true;
    t->added.add(a);
  }
  // Other added tokens listed in tokenizer_config.json.
  const auto atd = fc.tokenizer_config.find("added_tokens_decoder");
  if (atd != fc.tokenizer_config.end() && atd->is_object()) {
    for (auto it = atd->begin(); it != atd->end(); ++it) {
      const std::string where = "added_tokens_decoder." + it.key();
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
        throw InputError(join_path(fc.dir, "tokenizer_config.json"), where, "key must be an id");
      }
      const auto content = token_content(it.value());
      if (!content || id < 0 || id > kMaxVocabId) continue;
      t->added.add(added_token(it.value(), *content, id));
    }
  }
  finish(t.get());
  resolve_specials(t.get(), fc, nullptr, vocab_path, t->model.vocab.count(endoftext) ? endoftext : std::string());
  return t;
}
}  // namespace

}  // namespace gqa::tok
