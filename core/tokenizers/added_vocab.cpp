#include "core/tokenizers/added_vocab.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/tokenizers/unicode.h"

namespace gqa::tok {

void AddedVocab::add(const AddedToken& token) {
  if (token.content.empty()) return;  // HF ignores empty added tokens
  size_t index;
  const auto it = by_content_.find(token.content);
  if (it != by_content_.end()) {
    index = it->second;
    by_id_.erase(tokens_[index].id);
    tokens_[index] = token;
  } else {
    index = tokens_.size();
    tokens_.push_back(token);
    by_content_[token.content] = index;
  }
  by_id_[token.id] = index;
}

void AddedVocab::build() {
  for (auto& pass : first_byte_) {
    for (auto& bucket : pass) bucket.clear();
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const auto b = static_cast<unsigned char>(tokens_[i].content[0]);
    first_byte_[tokens_[i].normalized ? 1 : 0][b].push_back(i);
  }
  for (auto& pass : first_byte_) {
    for (auto& bucket : pass) {
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
    }
  }
}

const AddedToken* AddedVocab::by_id(int64_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocab::by_content(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

int64_t AddedVocab::max_id() const {
  int64_t m = -1;
  for (const auto& t : tokens_) m = std::max(m, t.id);
  return m;
}

namespace {
// Code point that ends just before byte `end` (0 when there is none or it is invalid).
uint32_t last_char(std::string_view s, size_t end) {
  size_t start = end;
  while (start > 0 && end - start < 4) {
    --start;
    if ((static_cast<unsigned char>(s[start]) & 0xC0) != 0x80) break;
  }
  if (start == end) return 0;
  uint32_t cp = 0;
  const size_t n = utf8_next(s, start, &cp);
  return start + n == end && cp != 0xFFFFFFFFu ? cp : 0;
}
uint32_t first_char(std::string_view s, size_t begin) {
  if (begin >= s.size()) return 0;
  uint32_t cp = 0;
  utf8_next(s, begin, &cp);
  return cp == 0xFFFFFFFFu ? 0 : cp;
}
}  // namespace

void AddedVocab::split_pass(std::string_view text, size_t base, bool normalized, std::vector<Piece>* out) const {
  const auto& buckets = first_byte_[normalized ? 1 : 0];
  size_t start_offset = 0;  // end of the previous split
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = buckets[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (size_t i : bucket) {
      const auto& c = tokens_[i].content;
      if (text.compare(pos, c.size(), c) == 0) {
        hit = &tokens_[i];
        break;  // longest first
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    pos = stop;  // matches never overlap, even a discarded one
    if (hit->single_word) {
      const bool start_ok = start == 0 || !is_word_char(last_char(text, start));
      const bool stop_ok = stop == text.size() || !is_word_char(first_char(text, stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (hit->lstrip) {
      size_t s = start;
      while (s > start_offset) {
        size_t b = s - 1;
        while (b > start_offset && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        uint32_t cp = 0;
        utf8_next(text, b, &cp);
        if (!is_unicode_whitespace(cp)) break;
        s = b;
      }
      start = s;
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        uint32_t cp = 0;
        const size_t n = utf8_next(text, stop, &cp);
        if (!is_unicode_whitespace(cp)) break;
        stop += n;
      }
      pos = stop;
    }
    if (start > start_offset) {
      out->push_back({text.substr(start_offset, start - start_offset), -1, base + start_offset});
    }
    out->push_back({text.substr(start, stop - start), hit->id, base + start});
    start_offset = stop;
  }
  if (start_offset < text.size()) {
    out->push_back({text.substr(start_offset), -1, base + start_offset});
  }
}

std::vector<AddedVocab::Piece> AddedVocab::split(std::string_view text) const {
  std::vector<Piece> first, out;
  split_pass(text, 0, false, &first);
  for (const auto& p : first) {
    if (p.id >= 0) {
      out.push_back(p);
    } else {
      split_pass(p.text, p.offset, true, &out);
    }
  }
  return out;
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

AddedToken added_token(const nlohmann::json& flags, std::string content, int64_t id) {
  AddedToken a;
  a.content = std::move(content);
  a.id = id;
  a.special = json_bool(flags, "special", false);
  a.lstrip = json_bool(flags, "lstrip", false);
  a.rstrip = json_bool(flags, "rstrip", false);
  a.single_word = json_bool(flags, "single_word", false);
  a.normalized = json_bool(flags, "normalized", !a.special);
  return a;
}

}  // namespace gqa::tok
