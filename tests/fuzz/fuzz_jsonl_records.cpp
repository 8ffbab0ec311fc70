// Fuzz target: the input is the text of a .jsonl file, split at '\n' as every JSONL reader splits
// it: each line through parse_jsonl_line (core/jsonl: blank lines skipped, depth limit, one JSON
// object; the training-data loaders, summarization pairs and minimal pairs all read lines with it),
// then the fields the loaders take — "text" for language modelling, "document"/"summary" for
// seq2seq — through jsonl_string_field and encoded
// with the project's BPE (cut to 300 ids), plain and with special tokens, every id checked.
// fuzz_jsonl runs the whole loaders (token cache, memory mapping, truncation) on the same kind of
// input at a fraction of the speed.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/jsonl.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/exercise_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/small_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gqa;
  static const std::unique_ptr<Tokenizer> tokenizer = fuzz::small_bpe(fuzz::scratch_dir() + "/tokenizer");
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    const std::string line(rest.substr(0, newline));
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    const std::string where = "data.jsonl:" + std::to_string(line_number);
    std::optional<nlohmann::json> record;
    try {
      record = parse_jsonl_line(line, where);
    } catch (const InputError&) {
      continue;
    }
    if (!record) continue;
    fuzz::check(record->is_object(), "a record is a JSON object");
    for (const char* field : {"text", "document", "summary"}) {
      try {
        const std::string& text = jsonl_string_field(*record, field, where);
        fuzz::check_ids(*tokenizer, tokenizer->encode(text), "encode");
        fuzz::check_ids(*tokenizer, tokenizer->encode_with_special(text), "encode_with_special");
      } catch (const InputError&) {}
    }
  }
  return 0;
}
