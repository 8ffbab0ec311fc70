// Training data, torch-free (fast to build and to fuzz): plain text files and folders packed into
// fixed-length sequences with EOS between documents, JSONL records (`text`, or `document`/`summary`
// pairs for seq2seq), and pre-tokenized token files (HDF5 dataset, raw uint16/uint32 `.bin`,
// memory-mapped). Tokenizing large text is streamed and cached on disk, keyed by the source files
// and the tokenizer, so a second run (or a resumed one) reads ids straight from the cache.
//
// Documents. A text file (plain or .gz) holds one or more documents separated by lines that are
// exactly `<|endoftext|>` (the shared corpus separates with "\n\n<|endoftext|>\n\n"); newlines
// (and CRs) at the start and end of each document are dropped and empty documents are skipped.
// Each document is encoded whole, so its ids equal those of tokenizing it at once. A JSONL record
// is one document. Token files (.h5, .bin) are taken as they are: no EOS is added, and several
// files are simply concatenated.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gqa {

class Tokenizer;

struct DataOptions {
  // Files or folders. A folder contributes every regular file directly inside it, sorted by name;
  // hidden files (".name") and subfolders are skipped.
  std::vector<std::string> paths;
  // "auto" (by extension: .jsonl/.jsonl.gz, .h5/.hdf5, .bin, anything else = text, .gz or not),
  // or one of "text", "jsonl", "hdf5", "bin".
  std::string format = "auto";
  std::string text_field = "text";                                  // JSONL field for LM data
  std::string source_field = "document", target_field = "summary";  // JSONL seq2seq pairs
  std::string hdf5_dataset = "tokens";                              // 1-D integer dataset in .h5 files
  std::string bin_dtype = "uint16";                                 // "uint16" | "uint32" for .bin files
  // Token cache; empty = $GQA_CACHE_DIR, else $XDG_CACHE_HOME/gqa, else ~/.cache/gqa. Entries
  // (raw little-endian uint32 ids under <cache>/tokens/) are keyed by the source's absolute
  // path, size and mtime, the tokenizer (vocab size, special ids, a probe encoding and a sample
  // of its vocabulary), eos and the format options; they are written to a temp file and renamed.
  std::string cache_dir;
  // Ids must be < vocab_size (checked on every load, cached or not; InputError names the file
  // and the token position). 0 = no limit beyond fitting an int32.
  int64_t vocab_size = 0;
};

// One flat stream of token ids (documents joined with EOS), memory-mapped from the cache or a
// token file (one mapped segment per source file). Cheap to copy (shared mapping); read-only, so
// safe to read from several threads.
class TokenStream {
 public:
  int64_t size() const;                  // 0 for a default-constructed stream
  uint32_t operator[](int64_t i) const;  // std::out_of_range outside [0, size())
  // Copies ids [begin, begin + n) into out; std::out_of_range when the range exceeds the stream.
  void read(int64_t begin, int64_t n, int32_t* out) const;
  // e.g. "train.txt.gz: 3038354 tokens (cached)"; the word in parentheses is "tokenized",
  // "cached", "converted" (HDF5 read into the cache) or "mapped" (.bin). Several sources:
  // "3 files, 123 tokens (1 tokenized, 2 cached)".
  const std::string& description() const;
  struct Impl;
  std::shared_ptr<const Impl> impl;
};

// What the sources of `opts` are, by the same detection the loaders use (folders expanded):
// whether any needs a tokenizer (text, JSONL), and whether all are JSONL records. Throws
// InputError as the loaders would for a missing file or an unknown --format.
bool data_needs_tokenizer(const DataOptions& opts);
bool data_is_all_jsonl(const DataOptions& opts);

// Tokenizes (or maps) every source of `opts` into one stream. Text and JSONL `text_field` records
// are encoded without special tokens and each document is followed by `eos` (when >= 0).
// Throws InputError: file missing or yielding no tokens ("no tokens"), JSONL line that is not JSON
// or lacks the field (file:line), ids beyond vocab_size, unreadable HDF5 dataset, .bin size not a
// multiple of the dtype, text without a tokenizer, cache folder that cannot be written.
TokenStream load_token_stream(const DataOptions& opts, const Tokenizer* tokenizer, int64_t eos);

// Fixed windows of a stream for causal LM training: sequence i is ids [i*len, i*len + len + 1)
// (input len tokens + the next one as the last target). The tail that does not fill a window is
// dropped; a stream shorter than one window is an InputError.
class PackedSequences {
 public:
  PackedSequences(TokenStream stream, int64_t seq_len);
  int64_t count() const;
  int64_t seq_len() const { return seq_len_; }
  void sequence(int64_t i, int32_t* out) const;  // writes seq_len + 1 ids
  const TokenStream& stream() const { return stream_; }

 private:
  TokenStream stream_;
  int64_t seq_len_;
};

// Seq2seq pairs from JSONL (source_field -> target_field), encoded with the tokenizer's special
// tokens (encode_with_special, e.g. T5 appends </s>), truncated to the given lengths as HF's
// truncation=True does: the text ids are cut so that the special tokens still fit (a length <= 0
// means no limit). The text ids are cached like the token stream (before truncation, so other
// lengths reuse the cache). InputError names file:line for a bad record.
struct Seq2SeqExample {
  std::vector<int32_t> source, target;
};
std::vector<Seq2SeqExample> load_seq2seq(const DataOptions& opts, const Tokenizer& tokenizer, int64_t max_source,
                                         int64_t max_target);

// Order of examples: a seeded permutation per epoch (epoch e shuffles with std::mt19937_64 seeded
// with seed + e, by a Fisher-Yates of our own over the engine's raw output, so the order is the
// same on every platform), consumed in batches. Its position is part of a training checkpoint so a
// resumed run sees exactly the same batches. InputError for n_examples or batch_size < 1.
class BatchOrder {
 public:
  BatchOrder(int64_t n_examples, int64_t batch_size, uint64_t seed, bool shuffle = true);
  // batch_size indices; a batch that reaches the end of an epoch continues into the next one.
  std::vector<int64_t> next();
  // Epoch of the next index to be returned (= number of epochs fully consumed).
  int64_t epoch() const { return epoch_; }
  // {"epoch":..,"position":..,"n_examples":..,"batch_size":..,"seed":..,"shuffle":..}
  nlohmann::json state() const;
  // Throws InputError ("batch_order", field) on a malformed state or one of a different shape
  // (n_examples, batch_size, seed or shuffle differ).
  void restore(const nlohmann::json& s);

 private:
  void reshuffle();
  int64_t n_, batch_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0, position_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace gqa
