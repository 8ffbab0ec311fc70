// Private factory functions behind load_tokenizer (core/tokenizers/load_tokenizer.cpp).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

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

}  // namespace gqa::tok
