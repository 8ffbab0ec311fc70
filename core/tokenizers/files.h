// Reading the files of a model folder with errors that name the file (private to tokenizers).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace gqa::tok {

std::string join_path(const std::string& dir, const std::string& name);
bool is_file(const std::string& path);
// Whole file as bytes; InputError(path, "", ...) when it cannot be read.
std::string read_file(const std::string& path);
// Parsed JSON; InputError(path, "", "malformed JSON ...") on a syntax error.
nlohmann::json read_json(const std::string& path);

// A token as tokenizer_config.json / special_tokens_map.json write it: "text" or
// {"content": "text", ...}. nullopt for null or anything else.
std::optional<std::string> token_content(const nlohmann::json& j);

// The optional JSON files beside the tokenizer that say which tokens are BOS/EOS/PAD and which
// model family the folder is. Absent files are empty objects.
struct FolderConfig {
  std::string dir;
  nlohmann::json config = nlohmann::json::object();            // config.json
  nlohmann::json tokenizer_config = nlohmann::json::object();  // tokenizer_config.json
  nlohmann::json special_tokens_map = nlohmann::json::object();

  // "bos_token" etc.: tokenizer_config.json, then special_tokens_map.json. The outer optional is
  // empty when neither file has the key; the inner one is empty when it is set to null.
  std::optional<std::optional<std::string>> token(const std::string& key) const;
  std::optional<bool> flag(const std::string& key) const;          // a boolean in tokenizer_config.json
  std::optional<int64_t> config_id(const std::string& key) const;  // "bos_token_id" in config.json
  std::string model_type() const;                                  // config.json "model_type", or ""
  std::string tokenizer_class() const;                             // tokenizer_config.json "tokenizer_class", or ""
};
FolderConfig read_folder_config(const std::string& dir);

}  // namespace gqa::tok
