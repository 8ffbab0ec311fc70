// load_tokenizer: picks the tokenizer files of a Hugging Face model folder.
#include <sys/stat.h>

#include "core/error.h"
#include "core/tokenizers/files.h"
#include "core/tokenizers/loaders.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  using tok::is_file;
  using tok::join_path;
  struct stat st {};
  if (::stat(model_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw InputError(model_dir, "", "not a directory");
  }
  const tok::FolderConfig fc = tok::read_folder_config(model_dir);

  std::string spm;  // the SentencePiece model, when there is one
  for (const char* name : {"tokenizer.model", "spiece.model"}) {
    if (spm.empty() && is_file(join_path(model_dir, name))) spm = join_path(model_dir, name);
  }

  const std::string tj_path = join_path(model_dir, "tokenizer.json");
  if (is_file(tj_path)) {
    const nlohmann::json tj = tok::read_json(tj_path);
    if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object()) {
      throw InputError(tj_path, "model", "expected an object with a \"model\" object");
    }
    const nlohmann::json& model = tj["model"];
    const std::string type = model.contains("type") && model["type"].is_string()
                                 ? model["type"].get<std::string>()
                                 : (model.contains("merges") ? "BPE" : "");
    if (type == "BPE") {
      if (tok::has_byte_level_pre_tokenizer(tj)) {
        return tok::load_bpe_from_tokenizer_json(tj_path, tj, fc);
      }
      // Llama-2 / Mistral style (Metaspace, byte fallback): the .model file is authoritative.
      if (!spm.empty()) return tok::load_sentencepiece(spm, fc, &tj);
      throw InputError(tj_path, "pre_tokenizer",
                       "BPE without a ByteLevel pre-tokenizer (SentencePiece style) is supported "
                       "only with its tokenizer.model beside it, which is missing");
    }
    if (type == "Unigram") {
      if (!spm.empty()) return tok::load_sentencepiece(spm, fc, &tj);
      return tok::load_unigram_tokenizer_json(tj_path, tj, fc);  // transformers 5 saves no spiece.model
    }
    throw InputError(tj_path, "model.type",
                     "model type \"" + type +
                         "\" is not supported (byte-level BPE, Unigram, or SentencePiece BPE through "
                         "its .model file)");
  }

  const std::string vocab = join_path(model_dir, "vocab.json");
  const std::string merges = join_path(model_dir, "merges.txt");
  if (is_file(vocab) && is_file(merges)) return tok::load_bpe_from_vocab_merges(vocab, merges, fc);
  if (!spm.empty()) return tok::load_sentencepiece(spm, fc, nullptr);
  throw InputError(model_dir, "tokenizer",
                   "no tokenizer.json, vocab.json+merges.txt or tokenizer.model/spiece.model found");
}

}  // namespace gqa
