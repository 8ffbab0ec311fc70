// Fuzz target: the input is a .jsonl training-data file, read by the data loader as
// `gqa uptrain/train --data F.jsonl` does, with the project's BPE (bpe4096 cut to 300 ids):
//  1. load_token_stream: one {"text": ...} record per line, blank lines skipped, each record
//     encoded and followed by EOS, written to the token cache and memory-mapped back;
//  2. load_seq2seq: {"document": ..., "summary": ...} pairs, cached, with special tokens and
//     truncation.
// The token cache lives in the scratch folder and is emptied after every input, so every input is
// tokenized afresh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/small_bpe.h"
#include "uptrain/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gqa;
  const std::string& dir = fuzz::scratch_dir();
  static const std::unique_ptr<Tokenizer> tokenizer = fuzz::small_bpe(dir + "/tokenizer");
  const std::string path = dir + "/data.jsonl";
  fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));

  DataOptions opts;
  opts.paths = {path};
  opts.cache_dir = dir + "/cache";
  opts.vocab_size = tokenizer->vocab_size();
  const int64_t eos = tokenizer->eos_id().value_or(0);
  try {
    const TokenStream stream = load_token_stream(opts, tokenizer.get(), eos);
    fuzz::check(stream.size() > 0, "an accepted stream has tokens");
    std::vector<int32_t> ids(size_t(stream.size()));
    stream.read(0, stream.size(), ids.data());
    for (int32_t id : ids) fuzz::check(id >= 0 && id < opts.vocab_size, "id inside the vocabulary");
    fuzz::check(ids.back() == eos, "the stream ends with EOS");
  } catch (const InputError&) {}
  try {
    const std::vector<Seq2SeqExample> pairs = load_seq2seq(opts, *tokenizer, 16, 8);
    for (const auto& p : pairs) {
      fuzz::check(p.source.size() <= 16 && p.target.size() <= 8, "truncation");
    }
  } catch (const InputError&) {}
  files::remove_all(opts.cache_dir);
  return 0;
}
