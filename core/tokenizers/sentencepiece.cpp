// SentencePiece models (T5 unigram, Llama-2 BPE with byte fallback) through libsentencepiece,
// wrapped so that the ids equal those of transformers' T5Tokenizer / LlamaTokenizer:
//  - added/special tokens (<s>, </s>, <unk>, <pad>, <extra_id_N>) are split out of the text
//    first, as HF does (sentencepiece alone would spell "</s>" out as pieces);
//  - T5: libsentencepiece normalizes (charsmap, whitespace); whitespace its normalizer keeps
//    (U+0085, ...) becomes a space first, since HF splits words there; the pieces are then
//    chosen by HF's Unigram Viterbi (double-precision scores, see Unigram below);
//  - Llama: HF applies no normalization and adds the "▁" prefix itself (only to the first piece
//    of text, and not when it already starts with a space); sentencepiece's BPE is therefore run
//    with its normalizer and dummy prefix switched off, and the prefix is added here.
// A Unigram tokenizer.json without its .model file (T5 saved by transformers 5) becomes a model
// in memory (unigram_json.cpp) and takes the T5 path from there.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "core/error.h"
#include "core/tokenizers/added_vocab.h"
#include "core/tokenizers/loaders.h"
#include "core/tokenizers/precompiled_charsmap.h"
#include "core/tokenizers/sentencepiece_proto.h"
#include "core/tokenizers/unicode.h"

namespace gqa::tok {
namespace {

using nlohmann::json;

// The model with normalizer_spec {name: "identity", no charsmap, add_dummy_prefix: false,
// remove_extra_whitespaces: false}: text reaches the BPE exactly as given, spaces as "▁".
std::optional<std::string> raw_text_model(std::string_view model) {
  const auto top = proto::parse_fields(model);
  if (!top) return std::nullopt;
  std::string spec_rest;  // NormalizerSpec fields we keep (escape_whitespaces, ...)
  std::string out;
  for (const auto& f : *top) {
    if (f.number == proto::kNormalizerSpec && f.wire_type == proto::kLengthDelimited) {
      const auto spec = proto::parse_fields(f.payload);
      if (!spec) return std::nullopt;
      for (const auto& g : *spec) {
        if (g.number < proto::kName || g.number > proto::kRemoveExtraWhitespaces) spec_rest.append(g.raw);
      }
    } else {
      out.append(f.raw);
    }
  }
  std::string spec;
  proto::put_bytes(&spec, proto::kName, "identity");
  proto::put_varint(&spec, proto::kAddDummyPrefix, 0);
  proto::put_varint(&spec, proto::kRemoveExtraWhitespaces, 0);
  spec += spec_rest;
  proto::put_bytes(&out, proto::kNormalizerSpec, spec);
  return out;
}

// ---------------------------------------------------------------------------------------------

int byte_token(const std::string& t);

// HF's Unigram model (tokenizers/src/models/unigram/model.rs, encode_optimized) over the pieces
// and scores of the SentencePiece model. libsentencepiece's Viterbi sums scores in float, HF's in
// double; on near-ties ("-----" = "-" "--" "--" or "--" "--" "-") the two pick different paths,
// so T5 ids are computed here with HF's arithmetic on sentencepiece's normalized text.
class Unigram {
 public:
  // `scores`: the pieces' scores when they are known more precisely than the model's floats.
  void build(const sentencepiece::SentencePieceProcessor& sp, const std::vector<double>* scores) {
    const int n = sp.GetPieceSize();
    trie_.assign(1, Node{});
    scores_.resize(size_t(n));
    double min_score = std::numeric_limits<double>::infinity();
    for (int id = 0; id < n; ++id) {
      scores_[size_t(id)] = scores != nullptr ? (*scores)[size_t(id)] : sp.GetScore(id);
      min_score = std::min(min_score, scores_[size_t(id)]);
      int32_t node = 0;
      for (unsigned char b : sp.IdToPiece(id)) {
        int32_t next = child(node, b);
        if (next < 0) {
          next = int32_t(trie_.size());
          trie_[size_t(node)].next.emplace_back(b, next);
          std::sort(trie_[size_t(node)].next.begin(), trie_[size_t(node)].next.end());
          trie_.emplace_back();
        }
        node = next;
      }
      trie_[size_t(node)].id = id;  // a repeated piece keeps its last id, as HF
    }
    unk_id_ = sp.unk_id();
    unk_score_ = min_score - 10.0;  // K_UNK_PENALTY
  }

  // One pre-tokenized word ("▁word") to ids; consecutive unknown characters fuse into one <unk>.
  void encode_word(std::string_view w, std::vector<int>* out) const {
    struct Best {
      int id = -1;
      double score = 0.0;
      int64_t starts_at = -1;
    };
    std::vector<Best> best(w.size() + 1);
    size_t starts_at = 0;
    while (starts_at < w.size()) {
      const double till_here = best[starts_at].score;
      uint32_t cp = 0;
      const size_t mblen = utf8_next(w, starts_at, &cp);
      bool has_single_node = false;
      int32_t node = 0;
      for (size_t k = starts_at; k < w.size(); ++k) {
        node = child(node, static_cast<unsigned char>(w[k]));
        if (node < 0) break;
        const int id = trie_[size_t(node)].id;
        if (id < 0) continue;
        Best& target = best[k + 1];
        const double candidate = scores_[size_t(id)] + till_here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {id, candidate, int64_t(starts_at)};
        }
        if (k + 1 - starts_at == mblen) has_single_node = true;
      }
      if (!has_single_node) {
        Best& target = best[starts_at + mblen];
        const double candidate = unk_score_ + till_here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {unk_id_, candidate, int64_t(starts_at)};
        }
      }
      starts_at += mblen;
    }
    std::vector<int> ids;
    for (size_t end = w.size(); end > 0;) {
      const Best& b = best[end];
      if (b.starts_at < 0) break;  // cannot happen: every character has a path
      if (!(b.id == unk_id_ && !ids.empty() && ids.back() == unk_id_)) ids.push_back(b.id);
      end = size_t(b.starts_at);
    }
    out->insert(out->end(), ids.rbegin(), ids.rend());
  }

 private:
  struct Node {
    int id = -1;
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
  };
  int32_t child(int32_t node, unsigned char b) const {
    const auto& next = trie_[size_t(node)].next;
    const auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(b, int32_t{-1}));
    return it != next.end() && it->first == b ? it->second : -1;
  }
  std::vector<Node> trie_;
  std::vector<double> scores_;
  int unk_id_ = 0;
  double unk_score_ = 0.0;
};

enum class Style { kT5, kLlama };
// When the "▁" word-start prefix goes in front of a text piece (HF Metaspace prepend_scheme).
enum class Prefix { kNever, kFirst, kAlways, kAlwaysEvenAfterSpace };

class SentencePieceTokenizer final : public Tokenizer {
 public:
  sentencepiece::SentencePieceProcessor sp;      // as shipped (T5 encoding)
  sentencepiece::SentencePieceProcessor sp_raw;  // Llama: no normalizer, no dummy prefix
  Style style = Style::kLlama;
  Prefix prefix = Prefix::kFirst;
  bool strip_decoded_space = true;  // Llama decoder's Strip(" ", 1, 0)
  AddedVocab added;
  std::vector<uint32_t> split_ws;  // T5: whitespace the normalizer keeps; becomes ' '
  Unigram unigram;                 // T5: HF's Viterbi over the normalized text

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    // The HF decoders: T5's Metaspace (the first token loses its "▁"s, later ones become
    // spaces) and Llama's Replace("▁", " ") + ByteFallback + Fuse + Strip(1 leading space).
    std::vector<std::string> tokens;
    for (int64_t id : ids) {
      if (const AddedToken* t = added.by_id(id)) {
        if (!(skip_special && t->special)) tokens.push_back(t->content);
      } else if (id >= 0 && id < sp.GetPieceSize()) {
        tokens.push_back(sp.IdToPiece(int(id)));
      }  // ids outside the vocabulary are skipped, as HF does
    }
    static const std::string kSpace = "\xE2\x96\x81";  // U+2581
    const auto replace_space = [&](const std::string& s, const char* with) {
      std::string r;
      size_t i = 0;
      while (i < s.size()) {
        if (s.compare(i, kSpace.size(), kSpace) == 0) {
          r += with;
          i += kSpace.size();
        } else {
          r += s[i++];
        }
      }
      return r;
    };
    std::string out;
    if (style == Style::kT5) {
      for (size_t i = 0; i < tokens.size(); ++i) out += replace_space(tokens[i], i == 0 ? "" : " ");
      return out;
    }
    std::string bytes;  // pending <0xXX> tokens
    const auto flush = [&] {
      if (bytes.empty()) return;
      if (is_valid_utf8(bytes)) {
        out += bytes;
      } else {
        for (size_t i = 0; i < bytes.size(); ++i) out += "\xEF\xBF\xBD";
      }
      bytes.clear();
    };
    for (const auto& t : tokens) {
      if (const int b = byte_token(t); b >= 0) {
        bytes += char(b);
        continue;
      }
      flush();
      out += replace_space(t, " ");
    }
    flush();
    if (strip_decoded_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

 private:
  void encode_into(const std::string& text, std::vector<int64_t>* out) const override {
    std::vector<int> ids;
    std::string buf;
    for (const auto& piece : added.split(text)) {
      if (piece.id >= 0) {
        out->push_back(piece.id);
        continue;
      }
      ids.clear();
      if (style == Style::kT5) {
        encode_t5(whitespace_to_space(piece.text, &buf), &ids);
      } else {
        // Metaspace checks after turning spaces into "▁", so a literal "▁" counts as well.
        const bool starts_with_space = piece.text[0] == ' ' || piece.text.compare(0, 3, "\xE2\x96\x81") == 0;
        bool add = false;
        switch (prefix) {
          case Prefix::kNever: break;
          case Prefix::kFirst: add = piece.offset == 0 && !starts_with_space; break;
          case Prefix::kAlways: add = !starts_with_space; break;
          case Prefix::kAlwaysEvenAfterSpace: add = true; break;
        }
        if (add) {
          buf.assign(" ");
          buf.append(piece.text);
          run(sp_raw, buf, &ids);
        } else {
          run(sp_raw, piece.text, &ids);
        }
      }
      out->insert(out->end(), ids.begin(), ids.end());
    }
  }

  // sentencepiece normalizes (charsmap, whitespace collapsed, "▁" prefix); its pieces joined are
  // the normalized text, which HF's Metaspace(split=true) cuts before every "▁".
  void encode_t5(std::string_view s, std::vector<int>* ids) const {
    std::vector<std::string> pieces;
    const auto status = sp.Encode(absl::string_view(s.data(), s.size()), &pieces);
    if (!status.ok()) throw std::runtime_error("sentencepiece: " + status.ToString());
    std::string norm;
    for (const auto& p : pieces) norm += p;
    static const std::string kSpace = "\xE2\x96\x81";  // U+2581
    size_t start = 0;
    while (start < norm.size()) {
      size_t end = norm.find(kSpace, start + 1);
      if (end == std::string::npos) end = norm.size();
      unigram.encode_word(std::string_view(norm).substr(start, end - start), ids);
      start = end;
    }
  }

  static void run(const sentencepiece::SentencePieceProcessor& p, std::string_view s, std::vector<int>* ids) {
    const auto status = p.Encode(absl::string_view(s.data(), s.size()), ids);
    if (!status.ok()) throw std::runtime_error("sentencepiece: " + status.ToString());
  }

  std::string_view whitespace_to_space(std::string_view s, std::string* buf) const {
    if (split_ws.empty()) return s;
    buf->clear();
    size_t i = 0;
    bool changed = false;
    while (i < s.size()) {
      uint32_t cp = 0;
      const size_t n = utf8_next(s, i, &cp);
      if (std::find(split_ws.begin(), split_ws.end(), cp) != split_ws.end()) {
        *buf += ' ';
        changed = true;
      } else {
        buf->append(s.data() + i, n);
      }
      i += n;
    }
    return changed ? std::string_view(*buf) : s;
  }
};

// ByteFallback: "<0xAB>" -> 0xAB, anything else -> -1.
int byte_token(const std::string& t) {
  const auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// T5 or Llama conventions: the model family in config.json, else the tokenizer class, else the
// file (T5 ships spiece.model, Llama tokenizer.model) and whether the model has a BOS piece.
Style pick_style(const std::string& model_path, const FolderConfig& fc,
                 const sentencepiece::SentencePieceProcessor& sp) {
  const std::string mt = fc.model_type();
  for (const char* t5 : {"t5", "mt5", "umt5", "longt5", "switch_transformers", "pile-t5"}) {
    if (mt == t5) return Style::kT5;
  }
  if (!mt.empty()) return Style::kLlama;
  const std::string cls = fc.tokenizer_class();
  if (starts_with(cls, "T5") || starts_with(cls, "MT5") || starts_with(cls, "UMT5")) {
    return Style::kT5;
  }
  if (!cls.empty()) return Style::kLlama;
  const bool spiece = model_path.size() >= 12 && model_path.compare(model_path.size() - 12, 12, "spiece.model") == 0;
  return spiece || sp.bos_id() < 0 ? Style::kT5 : Style::kLlama;
}

void add_added_tokens_from_json(const json& list, const std::string& path, AddedVocab* added) {
  if (!list.is_array()) throw InputError(path, "added_tokens", "expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& a = list[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") ||
        !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0) {
      throw InputError(path, where, "expected {\"id\": int, \"content\": string, ...}");
    }
    AddedToken t = added_token(a, a["content"].get<std::string>(), a["id"].get<int64_t>());
    // Matching after normalization is not modelled: T5/Llama tokens are normalized=false.
    t.normalized = false;
    added->add(t);
  }
}

std::unique_ptr<Tokenizer> load_model(const std::string& bytes, const std::string& source, const FolderConfig& fc,
                                      const json* tj, const UnigramJson* from_json);

// The precompiled charsmap of a model file, checked before libsentencepiece trusts it.
void check_charsmap(const std::string& bytes, const std::string& model_path) {
  const auto top = proto::parse_fields(bytes);
  if (!top) return;  // libsentencepiece refuses it
  for (const auto& f : *top) {
    if (f.number != proto::kNormalizerSpec || f.wire_type != proto::kLengthDelimited) continue;
    const auto spec = proto::parse_fields(f.payload);
    if (!spec) return;
    for (const auto& g : *spec) {
      if (g.number != proto::kPrecompiledCharsmap || g.wire_type != proto::kLengthDelimited || g.payload.empty()) {
        continue;
      }
      if (const auto problem = precompiled_charsmap_problem(g.payload)) {
        throw InputError(model_path, "normalizer_spec.precompiled_charsmap", "malformed: " + *problem);
      }
    }
  }
}

// Only tokenizer.json / tokenizer_config.json are JSON here; name the former if present.
template <typename Load>
std::unique_ptr<Tokenizer> naming_json_errors(const FolderConfig& fc, const json* tj, Load load) {
  try {
    return load();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(join_path(fc.dir, tj ? "tokenizer.json" : "tokenizer_config.json"), "",
                     std::string("unexpected JSON content: ") + e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, const FolderConfig& fc, const json* tj) {
  return naming_json_errors(fc, tj, [&] {
    const std::string bytes = read_file(model_path);  // InputError when missing
    check_charsmap(bytes, model_path);
    return load_model(bytes, model_path, fc, tj, nullptr);
  });
}

std::unique_ptr<Tokenizer> load_unigram_tokenizer_json(const std::string& path, const json& tj,
                                                       const FolderConfig& fc) {
  return naming_json_errors(fc, &tj, [&] {
    const UnigramJson u = read_unigram_tokenizer_json(path, tj, fc);
    return load_model(u.model_proto, path, fc, &tj, &u);
  });
}

namespace {
// `bytes`: a serialized ModelProto, from `source` (a .model file, or the tokenizer.json that
// `from_json` was rebuilt from).
std::unique_ptr<Tokenizer> load_model(const std::string& bytes, const std::string& source, const FolderConfig& fc,
                                      const json* tj, const UnigramJson* from_json) {
  auto t = std::make_unique<SentencePieceTokenizer>();
  const auto st = t->sp.LoadFromSerializedProto(absl::string_view(bytes.data(), bytes.size()));
  if (!st.ok()) {
    if (from_json != nullptr) {
      throw InputError(source, "model", "libsentencepiece refuses the model rebuilt from it: " + st.ToString());
    }
    throw InputError(source, "", "not a SentencePiece model: " + st.ToString());
  }
  t->style = from_json != nullptr ? Style::kT5 : pick_style(source, fc, t->sp);
  const int n = t->sp.GetPieceSize();
  if (n <= 0 || t->sp.unk_id() < 0) throw InputError(source, "pieces", "empty vocabulary");
  const std::string tj_path = join_path(fc.dir, "tokenizer.json");

  // Added tokens: tokenizer.json lists HF's; otherwise the model's control/unknown pieces, T5's
  // <extra_id_N> sentinels and tokenizer_config.json's added_tokens_decoder.
  if (tj != nullptr && tj->contains("added_tokens") && !(*tj)["added_tokens"].is_null()) {
    add_added_tokens_from_json((*tj)["added_tokens"], tj_path, &t->added);
  } else {
    for (int id = 0; id < n; ++id) {
      if (t->sp.IsControl(id) || t->sp.IsUnknown(id)) {
        AddedToken a;
        a.content = t->sp.IdToPiece(id);
        a.id = id;
        a.special = true;
        t->added.add(a);
      }
    }
    if (t->style == Style::kT5) {
      int64_t extra = 100;
      const auto it = fc.tokenizer_config.find("extra_ids");
      if (it != fc.tokenizer_config.end() && it->is_number_integer()) extra = it->get<int64_t>();
      extra = std::clamp<int64_t>(extra, 0, 100000);
      for (int64_t i = 0; i < extra; ++i) {
        AddedToken a;
        a.content = "<extra_id_" + std::to_string(i) + ">";
        a.id = n + extra - 1 - i;  // T5: <extra_id_0> is the last id
        a.special = true;
        if (t->added.by_content(a.content) == nullptr) t->added.add(a);
      }
    }
    const auto atd = fc.tokenizer_config.find("added_tokens_decoder");
    if (atd != fc.tokenizer_config.end() && atd->is_object()) {
      for (auto it = atd->begin(); it != atd->end(); ++it) {
        const auto content = token_content(it.value());
        char* end = nullptr;
        const long long id = std::strtoll(it.key().c_str(), &end, 10);
        if (!content || end == it.key().c_str() || *end != '\0' || id < 0) continue;
        AddedToken a = added_token(it.value(), *content, id);
        a.normalized = false;
        t->added.add(a);
      }
    }
  }
  t->added.build();
  t->size = std::max<int64_t>(n, t->added.max_id() + 1);

  if (t->style == Style::kT5) {
    t->unigram.build(t->sp, from_json != nullptr ? &from_json->scores : nullptr);
    // Which Unicode whitespace survives the normalizer (HF splits words there, spm would not).
    std::vector<std::string> pieces;
    for (uint32_t cp = 0; cp <= 0x3000; ++cp) {
      if (!is_unicode_whitespace(cp)) continue;
      std::string probe = "a", ws;
      utf8_append(ws, cp);
      probe += ws + "a";
      pieces.clear();
      if (!t->sp.Encode(probe, &pieces).ok()) continue;
      for (const auto& p : pieces) {
        if (p.find(ws) != std::string::npos) {
          t->split_ws.push_back(cp);
          break;
        }
      }
    }
  } else {
    const auto raw = raw_text_model(bytes);
    if (!raw || !t->sp_raw.LoadFromSerializedProto(*raw).ok()) {
      throw InputError(source, "normalizer_spec", "cannot rewrite the SentencePiece model");
    }
    // LlamaTokenizer (transformers 5): Metaspace prepend_scheme "first" (legacy=false) or
    // "always" (legacy=true), "never" without add_prefix_space. A tokenizer.json of another
    // class is followed instead: its Metaspace scheme, or the older Prepend("▁") normalizer.
    const std::string cls = fc.tokenizer_class();
    const bool llama_class = starts_with(cls, "Llama") || starts_with(cls, "CodeLlama");
    const bool add_prefix_space = fc.flag("add_prefix_space").value_or(true);
    const bool legacy = fc.flag("legacy").value_or(false);
    t->prefix = !add_prefix_space ? Prefix::kNever : legacy ? Prefix::kAlways : Prefix::kFirst;
    t->strip_decoded_space = add_prefix_space;
    if (tj != nullptr && !llama_class) {
      const json pre = tj->value("pre_tokenizer", json());
      const json norm = tj->value("normalizer", json());
      const auto has_prepend = [&](const json& j) {
        if (j.is_object() && j.value("type", "") == "Prepend") return true;
        if (j.is_object() && j.value("type", "") == "Sequence" && j.contains("normalizers") &&
            j["normalizers"].is_array()) {
          for (const auto& x : j["normalizers"]) {
            if (x.is_object() && x.value("type", "") == "Prepend") return true;
          }
        }
        return false;
      };
      if (pre.is_object() && pre.value("type", "") == "Metaspace") {
        const std::string scheme = pre.value("prepend_scheme", std::string("always"));
        t->prefix = scheme == "first" ? Prefix::kFirst : scheme == "never" ? Prefix::kNever : Prefix::kAlways;
        t->strip_decoded_space = t->prefix != Prefix::kNever;
      } else if (has_prepend(norm)) {
        t->prefix = Prefix::kAlwaysEvenAfterSpace;
        t->strip_decoded_space = true;
      } else if (norm.is_null() && pre.is_null()) {
        t->prefix = Prefix::kNever;
        t->strip_decoded_space = false;
      }
    }
  }

  // BOS/EOS/PAD: tokenizer_config.json / special_tokens_map.json names, else the model's ids.
  const auto id_of = [&](const std::string& content) -> std::optional<int64_t> {
    if (const AddedToken* a = t->added.by_content(content)) return a->id;
    const int id = t->sp.PieceToId(content);
    if (id >= 0 && (id != t->sp.unk_id() || content == t->sp.IdToPiece(id))) return id;
    return std::nullopt;
  };
  // Without a name in the folder: a .model file's own ids (its control pieces); a model rebuilt
  // from tokenizer.json has none, but the class's defaults (T5Tokenizer's "</s>" and "<pad>").
  const auto model_id = [&](int sp_id, const std::optional<std::string>& class_default) -> std::optional<int64_t> {
    if (from_json != nullptr) return class_default ? id_of(*class_default) : std::nullopt;
    return sp_id >= 0 ? std::optional<int64_t>(sp_id) : std::nullopt;
  };
  const auto resolve = [&](const std::string& key, std::optional<int64_t> fallback) -> std::optional<int64_t> {
    if (const auto tok = fc.token(key)) return *tok ? id_of(**tok) : std::nullopt;
    return fallback;
  };
  t->bos = resolve("bos_token", model_id(t->sp.bos_id(), std::nullopt));
  t->eos = resolve("eos_token", model_id(t->sp.eos_id(), from_json ? from_json->eos_token : std::nullopt));
  t->pad = resolve("pad_token", model_id(t->sp.pad_id(), from_json ? from_json->pad_token : std::nullopt));
  if (from_json != nullptr && from_json->runs_as_written) {
    t->prefix_ids = from_json->prefix_ids;
    t->suffix_ids = from_json->suffix_ids;
    for (const auto* ids : {&t->prefix_ids, &t->suffix_ids}) {
      for (int64_t id : *ids) {
        if (id >= t->size) {
          throw InputError(
              source, "post_processor.special_tokens",
              "id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(t->size) + " ids)");
        }
      }
    }
  } else if (t->style == Style::kT5) {
    t->bos.reset();  // T5Tokenizer has no BOS; </s> ends every sequence
    if (t->eos) t->suffix_ids.push_back(*t->eos);
  } else {
    if (fc.flag("add_bos_token").value_or(true) && t->bos) t->prefix_ids.push_back(*t->bos);
    if (fc.flag("add_eos_token").value_or(false) && t->eos) t->suffix_ids.push_back(*t->eos);
  }
  return t;
}
}  // namespace

}  // namespace gqa::tok
