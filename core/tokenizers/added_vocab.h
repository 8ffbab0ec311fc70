// Added tokens (special or not) that HF splits out of the text before any pre-tokenization.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gqa::tok {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false;
  bool lstrip = false;       // also swallows the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when not inside a word
  bool normalized = false;   // matched after normalization (second pass)
};

// A token's flags as tokenizer.json ("added_tokens") and tokenizer_config.json
// ("added_tokens_decoder") spell them; `normalized` defaults to !special as in HF.
AddedToken added_token(const nlohmann::json& flags, std::string content, int64_t id);

// A boolean field, or `fallback` when absent or not a boolean.
bool json_bool(const nlohmann::json& j, const char* key, bool fallback);

class AddedVocab {
 public:
  // A later token with the same content replaces the earlier one (as HF's map does).
  void add(const AddedToken& token);
  // Indexes the tokens for split(); call once after the last add().
  void build();
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* by_id(int64_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  int64_t max_id() const;

  // A piece of the input: plain text (id < 0) starting at byte `offset`, or an added token.
  struct Piece {
    std::string_view text;
    int64_t id;
    size_t offset;
  };
  // HF's AddedVocabulary::extract_and_normalize without a normalizer: leftmost-longest,
  // non-overlapping matches, first of the non-normalized tokens on the raw text, then of the
  // normalized ones inside the remaining text pieces. Empty text pieces are dropped.
  std::vector<Piece> split(std::string_view text) const;

 private:
  void split_pass(std::string_view text, size_t base, bool normalized, std::vector<Piece>* out) const;
  std::vector<AddedToken> tokens_;
  std::unordered_map<int64_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // First byte -> indices of tokens starting with it, longest first (per pass).
  std::vector<size_t> first_byte_[2][256];
};

}  // namespace gqa::tok
