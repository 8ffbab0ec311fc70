// The tokenizer of the JSONL fuzz targets, written into `dir` and loaded as the CLI loads one.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/files.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace gqa::fuzz {

// The project's BPE (examples/assets/bpe4096) cut to its first 300 ids and the merges among them:
// the loaders hash a sample of up to 1024 decoded ids into every cache key, which a small
// vocabulary keeps cheap; the records' parsing is the same.
inline std::unique_ptr<gqa::Tokenizer> small_bpe(const std::string& dir) {
  nlohmann::json tj = gqa::read_json_file(GQA_SOURCE_DIR "/examples/assets/bpe4096/tokenizer.json");
  nlohmann::json& model = tj["model"];
  nlohmann::json vocab = nlohmann::json::object(), merges = nlohmann::json::array();
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    if (it->get<int64_t>() < 300) vocab[it.key()] = *it;
  for (const auto& m : model["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      a = s.substr(0, s.find(' '));
      b = s.substr(s.find(' ') + 1);
    } else {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(m);
  }
  model["vocab"] = vocab;
  model["merges"] = merges;
  gqa::files::make_directories(dir);
  write_file(dir + "/tokenizer.json", tj.dump());
  gqa::files::copy_file(GQA_SOURCE_DIR "/examples/assets/bpe4096/tokenizer_config.json",
                        dir + "/tokenizer_config.json");
  return gqa::load_tokenizer(dir);
}

}  // namespace gqa::fuzz
