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
#include <sentencepiece_processor.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "core/error.h"
#include "core/tokenizers/added_vocab.h"
#include "core/tokenizers/loaders.h"
#include "core/tokenizers/unicode.h"

namespace gqa::tok {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Just enough protobuf wire format to rewrite ModelProto.normalizer_spec (field 3), since the
// Debian package ships no sentencepiece_model.pb.h.

bool read_varint(std::string_view s, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[(*pos)++]);
    *v |= uint64_t(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void write_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    *out += char((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *out += char(v);
}

struct Field {
  uint32_t number;
  int wire_type;
  std::string_view raw;      // tag and payload, for copying
  std::string_view payload;  // length-delimited content (wire type 2)
};

// Splits a message into its fields; nullopt when it is not well-formed.
std::optional<std::vector<Field>> parse_fields(std::string_view s) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    uint64_t tag = 0, v = 0;
    if (!read_varint(s, &pos, &tag)) return std::nullopt;
    Field f{uint32_t(tag >> 3), int(tag & 7), {}, {}};
    switch (f.wire_type) {
      case 0:
        if (!read_varint(s, &pos, &v)) return std::nullopt;
        break;
      case 1: pos += 8; break;
      case 2:
        if (!read_varint(s, &pos, &v) || v > s.size() - pos) return std::nullopt;
        f.payload = s.substr(pos, v);
        pos += v;
        break;
      case 5: pos += 4; break;
      default: return std::nullopt;  // groups are not used by sentencepiece
    }
    if (pos > s.size()) return std::nullopt;
    f.raw = s.substr(start, pos - start);
    fields.push_back(f);
  }
  return fields;
}

// The model with normalizer_spec {name: "identity", no charsmap, add_dummy_prefix: false,
// remove_extra_whitespaces: false}: text reaches the BPE exactly as given, spaces as "▁".
std::optional<std::string> raw_text_model(std::string_view proto) {
  const auto top = parse_fields(proto);
  if (!top) return std::nullopt;
  std::string spec_rest;  // NormalizerSpec fields we keep (escape_whitespaces, ...)
  std::string out;
  for (const auto& f : *top) {
    if (f.number == 3 && f.wire_type == 2) {
      const auto spec = parse_fields(f.payload);
      if (!spec) return std::nullopt;
      for (const auto& g : *spec) {
        if (g.number < 1 || g.number > 4) spec_rest.append(g.raw);
      }
    } else {
      out.append(f.raw);
    }
  }
  std::string spec;
  write_varint(&spec, (1 << 3) | 2);
  write_varint(&spec, 8);
  spec += "identity";
  write_varint(&spec, (3 << 3) | 0);
  write_varint(&spec, 0);
  write_varint(&spec, (4 << 3) | 0);
  write_varint(&spec, 0);
  spec += spec_rest;
  write_varint(&out, (3 << 3) | 2);
  write_varint(&out, spec.size());
  out += spec;
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
  void build(const sentencepiece::SentencePieceProcessor& sp) {
    const int n = sp.GetPieceSize();
    trie_.assign(1, Node{});
    scores_.resize(size_t(n));
    double min_score = std::numeric_limits<double>::infinity();
    for (int id = 0; id < n; ++id) {
      scores_[size_t(id)] = sp.GetScore(id);
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

std::unique_ptr<Tokenizer> load_sentencepiece_impl(const std::string& model_path, const FolderConfig& fc,
                                                   const json* tj);

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, const FolderConfig& fc, const json* tj) {
  try {
    return load_sentencepiece_impl(model_path, fc, tj);
  } catch (const nlohmann::json::exception& e) {
    // Only tokenizer.json / tokenizer_config.json are JSON here; name the former if present.
    throw InputError(join_path(fc.dir, tj ? "tokenizer.json" : "tokenizer_config.json"), "",
                     std::string("unexpected JSON content: ") + e.what());
  }
}

namespace {
std::unique_ptr<Tokenizer> load_sentencepiece_impl(const std::string& model_path, const FolderConfig& fc,
                                                   const json* tj) {
  auto t = std::make_unique<SentencePieceTokenizer>();
  const std::string bytes = read_file(model_path);  // InputError when missing
  const auto st = t->sp.LoadFromSerializedProto(absl::string_view(bytes.data(), bytes.size()));
  if (!st.ok()) {
    throw InputError(model_path, "", "not a SentencePiece model: " + st.ToString());
  }
  t->style = pick_style(model_path, fc, t->sp);
  const int n = t->sp.GetPieceSize();
  if (n <= 0 || t->sp.unk_id() < 0) throw InputError(model_path, "pieces", "empty vocabulary");
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
    t->unigram.build(t->sp);
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
      throw InputError(model_path, "normalizer_spec", "cannot rewrite the SentencePiece model");
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
  const auto resolve = [&](const std::string& key, int model_id) -> std::optional<int64_t> {
    if (const auto tok = fc.token(key)) return *tok ? id_of(**tok) : std::nullopt;
    if (model_id >= 0) return model_id;
    return std::nullopt;
  };
  t->bos = resolve("bos_token", t->sp.bos_id());
  t->eos = resolve("eos_token", t->sp.eos_id());
  t->pad = resolve("pad_token", t->sp.pad_id());
  if (t->style == Style::kT5) {
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
