// Fuzz target: a GPT-2 style tokenizer folder (vocab.json + merges.txt, no tokenizer.json), loaded
// by load_tokenizer and used to encode and decode.
// Input: vocab.json NUL merges.txt [NUL tokenizer_config.json [NUL text]]. Without a text part a
// few fixed strings are encoded; an empty tokenizer_config.json part means the file is absent.
// Covers the vocabulary (ids, dense id table), merges.txt lines ("#version", CRLF, exactly two
// tokens), the GPT2Tokenizer special tokens and tokenizer_config.json's added_tokens_decoder.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/exercise_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gqa;
  const std::string& dir = fuzz::scratch_dir();
  const auto parts = fuzz::split_parts(data, size, 4);
  fuzz::write_file(dir + "/vocab.json", parts[0]);
  fuzz::write_file(dir + "/merges.txt", parts.size() > 1 ? parts[1] : std::string_view());
  fuzz::load_and_exercise(dir, parts.size() > 2 ? parts[2] : std::string_view(),
                          parts.size() > 3 ? parts[3] : std::string_view(), parts.size() > 3);
  return 0;
}
