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
  std::vector<int64_t> encode(const std::string& text) const {
    std::vector<int64_t> out;
    encode_into(text, &out);
    return out;
  }
  // Encoding as HF's tokenizer(text) does with add_special_tokens=True (e.g. T5 appends </s>,
  // Llama prepends <s>/<|begin_of_text|>, GPT-2 adds nothing).
  std::vector<int64_t> encode_with_special(const std::string& text) const {
    std::vector<int64_t> out(prefix_ids);
    encode_into(text, &out);
    out.insert(out.end(), suffix_ids.begin(), suffix_ids.end());
    return out;
  }
  // Ids -> text; special tokens are dropped when skip_special is true.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;
  int64_t vocab_size() const { return size; }
  // Special ids as the tokenizer files define them; empty when the files define none.
  std::optional<int64_t> bos_id() const { return bos; }
  std::optional<int64_t> eos_id() const { return eos; }
  std::optional<int64_t> pad_id() const { return pad; }

  // Filled by the loaders from the tokenizer files.
  std::vector<int64_t> prefix_ids, suffix_ids;  // what encode_with_special puts around the text
  std::optional<int64_t> bos, eos, pad;
  int64_t size = 0;

 protected:
  // Appends the ids of `text` (no special tokens added) to `out`.
  virtual void encode_into(const std::string& text, std::vector<int64_t>* out) const = 0;
};

// Loads the tokenizer of a Hugging Face model folder: tokenizer.json (BPE with ByteLevel or a
// Split regex pre-tokenizer; Unigram, with or without its spiece.model), else vocab.json +
// merges.txt, else tokenizer.model / spiece.model.
// Throws InputError naming the folder when none is found or a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace gqa
