#include "core/tokenizers/files.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_depth.h"

namespace gqa::tok {

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const std::string& path) {
  if (!is_file(path)) throw InputError(path, "", "file not found");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, "", "read error");
  return ss.str();
}

nlohmann::json read_json(const std::string& path) {
  const std::string text = read_file(path);
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "", std::string("malformed JSON: ") + e.what());
  }
}

std::optional<std::string> token_content(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object()) {
    const auto it = j.find("content");
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return std::nullopt;
}

std::optional<std::optional<std::string>> FolderConfig::token(const std::string& key) const {
  for (const auto* j : {&tokenizer_config, &special_tokens_map}) {
    const auto it = j->find(key);
    if (it != j->end()) return token_content(*it);
  }
  return std::nullopt;
}

std::optional<bool> FolderConfig::flag(const std::string& key) const {
  const auto it = tokenizer_config.find(key);
  if (it != tokenizer_config.end() && it->is_boolean()) return it->get<bool>();
  return std::nullopt;
}

std::optional<int64_t> FolderConfig::config_id(const std::string& key) const {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  // Some models list several (Llama-3.1's eos_token_id); the first is the main one.
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<int64_t>();
  return std::nullopt;
}

std::string FolderConfig::model_type() const {
  const auto it = config.find("model_type");
  return it != config.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string FolderConfig::tokenizer_class() const {
  const auto it = tokenizer_config.find("tokenizer_class");
  return it != tokenizer_config.end() && it->is_string() ? it->get<std::string>() : "";
}

FolderConfig read_folder_config(const std::string& dir) {
  FolderConfig fc;
  fc.dir = dir;
  const auto load = [&](const char* name, nlohmann::json* out) {
    const std::string path = join_path(dir, name);
    if (!is_file(path)) return;
    nlohmann::json j = read_json(path);
    if (!j.is_object()) throw InputError(path, "", "expected a JSON object");
    *out = std::move(j);
  };
  load("config.json", &fc.config);
  load("tokenizer_config.json", &fc.tokenizer_config);
  load("special_tokens_map.json", &fc.special_tokens_map);
  return fc;
}

}  // namespace gqa::tok
