// Private factory functions behind load_tokenizer (core/tokenizers/load_tokenizer.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tokenizers/files.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa::tok {

// True when the tokenizer.json pre-tokenizer contains a ByteLevel step (GPT-2, Llama-3, ...).
bool has_byte_level_pre_tokenizer(const nlohmann::json& tokenizer_json);

// Byte-level BPE from a parsed tokenizer.json (`path` only names it in errors).
std::unique_ptr<Tokenizer> load_bpe_from_tokenizer_json(const std::string& path, const nlohmann::json& tokenizer_json,
                                                        const FolderConfig& folder);

// Byte-level BPE from GPT-2's vocab.json + merges.txt.
std::unique_ptr<Tokenizer> load_bpe_from_vocab_merges(const std::string& vocab_path, const std::string& merges_path,
                                                      const FolderConfig& folder);

// A SentencePiece model file (tokenizer.model / spiece.model). `tokenizer_json` (may be null)
// is the HF tokenizer.json beside it, whose added tokens and pre-tokenizer then count.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, const FolderConfig& folder,
                                              const nlohmann::json* tokenizer_json);

// A Unigram tokenizer.json without its SentencePiece model file (T5 saved by transformers 5), as
// transformers reads it (core/tokenizers/unigram_json.cpp): the model file rebuilt in memory,
// which then takes the same path as a .model file.
struct UnigramJson {
  std::string model_proto;     // a serialized SentencePiece ModelProto: pieces, unknown piece, charsmap
  std::vector<double> scores;  // the file's scores, which the ModelProto holds only as float
  // The special tokens the class falls back to when the folder names none (T5Tokenizer's).
  std::optional<std::string> eos_token, pad_token;
  // Whether transformers runs the file's own pipeline (then its post_processor puts prefix_ids and
  // suffix_ids around the text) or T5Tokenizer's (</s> after the text).
  bool runs_as_written = false;
  std::vector<int64_t> prefix_ids, suffix_ids;
};
UnigramJson read_unigram_tokenizer_json(const std::string& path, const nlohmann::json& tokenizer_json,
                                        const FolderConfig& folder);

// The tokenizer of read_unigram_tokenizer_json's model (core/tokenizers/sentencepiece.cpp).
std::unique_ptr<Tokenizer> load_unigram_tokenizer_json(const std::string& path, const nlohmann::json& tokenizer_json,
                                                       const FolderConfig& folder);

}  // namespace gqa::tok
