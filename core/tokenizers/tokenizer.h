// Tokenizers that reproduce Hugging Face ids: byte-level BPE (GPT-2, GPT-Neo, Llama-3 style, from
// tokenizer.json or vocab.json + merges.txt) and SentencePiece (T5, Llama-2, via libsentencepiece).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gqa {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids without special tokens (no BOS/EOS added).
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // Ids -> text; special tokens are dropped when skip_special is true.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;
  virtual int64_t vocab_size() const = 0;
  // Special ids as the tokenizer files define them; empty when the files define none.
  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  virtual std::optional<int64_t> pad_id() const = 0;
  // Encoding as HF's tokenizer(text) does with add_special_tokens=True (e.g. T5 appends </s>,
  // Llama prepends <s>/<|begin_of_text|>, GPT-2 adds nothing).
  virtual std::vector<int64_t> encode_with_special(const std::string& text) const = 0;
};

// Loads the tokenizer of a Hugging Face model folder: tokenizer.json (BPE with ByteLevel or a
// Split regex pre-tokenizer), else vocab.json + merges.txt, else tokenizer.model / spiece.model.
// Throws InputError naming the folder when none is found or a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace gqa
