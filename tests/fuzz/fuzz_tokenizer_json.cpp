// Fuzz target: a tokenizer folder with a tokenizer.json, loaded by load_tokenizer (as the CLI
// does) and used to encode and decode.
// Input: tokenizer.json [NUL tokenizer_config.json [NUL text]]. Without a text part a few fixed
// strings are encoded; an empty tokenizer_config.json part means the file is absent.
// Covers the model (vocab, merges as "a b" or ["a", "b"], unk/byte_fallback/prefix options), the
// normalizer check, pre-tokenizers (ByteLevel, Split with PCRE2 regexes or strings, Sequence),
// added tokens, post-processors (Template/Roberta/Bert/ByteLevel/Sequence) and the special tokens
// of tokenizer_config.json.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/exercise_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gqa;
  const std::string& dir = fuzz::scratch_dir();
  const auto parts = fuzz::split_parts(data, size, 3);
  fuzz::write_file(dir + "/tokenizer.json", parts[0]);
  fuzz::load_and_exercise(dir, parts.size() > 1 ? parts[1] : std::string_view(),
                          parts.size() > 2 ? parts[2] : std::string_view(), parts.size() > 2);
  return 0;
}
