// What the fuzz targets do with a tokenizer that loaded: encode (with and without the special
// tokens) and decode, checking that every id is inside the vocabulary.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace gqa::fuzz {

inline void check_ids(const Tokenizer& t, const std::vector<int64_t>& ids, const char* what) {
  for (int64_t id : ids) {
    if (id < 0 || id >= t.vocab_size()) {
      std::fprintf(stderr, "fuzz: %s gave id %lld outside the vocabulary [0, %lld)\n", what, static_cast<long long>(id),
                   static_cast<long long>(t.vocab_size()));
      std::abort();
    }
  }
}

// `text` empty: a few fixed strings (words, digits, spaces, non-ASCII, an added token).
inline void exercise_tokenizer(const Tokenizer& t, std::string_view text, bool text_given) {
  static const char* const kTexts[] = {"Hello world, it's 2024!  \n\tdon't",
                                       " caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\xa4\x96",
                                       "<|endoftext|>a<s></s>", "\xff\xfe invalid \xc3", ""};
  std::vector<std::string> texts;
  if (text_given)
    texts.emplace_back(text);
  else
    texts.assign(std::begin(kTexts), std::end(kTexts));
  for (const std::string& s : texts) {
    const std::vector<int64_t> ids = t.encode(s);
    check_ids(t, ids, "encode");
    const std::vector<int64_t> with = t.encode_with_special(s);
    check_ids(t, with, "encode_with_special");
    (void)t.decode(ids, true);
    (void)t.decode(with, false);
  }
  // Decoding any id, including unknown ones, must not fail.
  std::vector<int64_t> all = {-1, t.vocab_size(), t.vocab_size() + 1, INT64_MAX, INT64_MIN};
  for (int64_t id = 0; id < t.vocab_size() && id < 1024; ++id) all.push_back(id);
  (void)t.decode(all, false);
  (void)t.decode(all, true);
  for (const auto& id : {t.bos_id(), t.eos_id(), t.pad_id()}) {
    if (id) check_ids(t, {*id}, "a special id");
  }
}

// The tail shared by the tokenizer targets, whose tokenizer files are already in `dir`: writes
// tokenizer_config.json from `config` (absent when empty), loads the folder as the CLI does and,
// when that succeeds, exercises the tokenizer on `text` (or the fixed strings when not given).
inline void load_and_exercise(const std::string& dir, std::string_view config, std::string_view text, bool text_given) {
  if (!config.empty())
    write_file(dir + "/tokenizer_config.json", config);
  else
    remove_file(dir + "/tokenizer_config.json");
  std::unique_ptr<Tokenizer> t;
  try {
    t = load_tokenizer(dir);
  } catch (const InputError&) {
    return;
  }
  exercise_tokenizer(*t, text, text_given);
}

}  // namespace gqa::fuzz
