// A Unigram tokenizer.json without its SentencePiece model file (issue #20: T5 folders saved by
// transformers 5 hold no spiece.model). The ModelProto is rebuilt in memory from the file and
// loaded like a .model file, so one path serves both: libsentencepiece applies the file's
// Precompiled charsmap (HF's Precompiled normalizer is the same charsmap), HF's Viterbi runs over
// the file's pieces and scores, added tokens are split out first. Reimplementing the charsmap
// lookup instead would have given the json case a second normalizer to keep equal to the first.
//
// transformers 5 reads such a file in one of two ways, and so does this:
//  - class T5Tokenizer (named, or chosen by config.json's model_type t5/mt5/switch_transformers)
//    rebuilds T5's pipeline. From the file it takes model.vocab, the charsmap of the first
//    Precompiled normalizer and the added tokens; other normalizer steps, the pre-tokenizer,
//    decoder, post-processor, model.unk_id and byte_fallback do not count (the unknown piece is
//    id 2; </s> ends every sequence);
//  - its generic class (PreTrainedTokenizerFast / TokenizersBackend, also for class names it no
//    longer has, such as MT5Tokenizer) runs the file as written. That is supported when it is
//    T5's pipeline: a Precompiled normalizer (or none), WhitespaceSplit then Metaspace("▁",
//    prepend always, split), a Metaspace decoder and a TemplateProcessing post-processor (or
//    none); any other step is refused, naming its field.
#include <algorithm>
#include <cfloat>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/tokenizers/loaders.h"
#include "core/tokenizers/precompiled_charsmap.h"
#include "core/tokenizers/sentencepiece_proto.h"

namespace gqa::tok {
namespace {

using nlohmann::json;

const char* const kMetaspace = "\xE2\x96\x81";  // U+2581, T5's word-start mark

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// The normalizer types of HF tokenizers (tokenizers/src/normalizers/mod.rs); a file naming
// another one fails to load in transformers too.
bool known_normalizer(const std::string& type) {
  static const std::set<std::string> known = {"BertNormalizer", "ByteLevel", "Lowercase", "NFC",         "NFD",
                                              "NFKC",           "NFKD",      "Nmt",       "Precompiled", "Prepend",
                                              "Replace",        "Sequence",  "Strip",     "StripAccents"};
  return known.count(type) != 0;
}

// Whether transformers 5 builds T5Tokenizer's pipeline (true) or runs the file as written (false);
// InputError for a class that builds a pipeline of its own.
bool reads_as_t5_tokenizer(const std::string& path, const FolderConfig& fc) {
  const std::string cls = fc.tokenizer_class(), mt = fc.model_type();
  if (cls == "T5Tokenizer" || cls == "T5TokenizerFast") return true;
  // Class names transformers 5 maps to its generic class, which runs the file as written.
  static const std::set<std::string> as_written = {"PreTrainedTokenizerFast", "TokenizersBackend", "MT5Tokenizer",
                                                   "MT5TokenizerFast",        "UMT5Tokenizer",     "UMT5TokenizerFast"};
  if (as_written.count(cls)) return false;
  if (!cls.empty()) {
    throw InputError(join_path(fc.dir, "tokenizer_config.json"), "tokenizer_class",
                     "a Unigram tokenizer.json without its SentencePiece model file (" + path +
                         ") is read as transformers' T5Tokenizer or PreTrainedTokenizerFast reads it; " + quoted(cls) +
                         " builds a pipeline of its own");
  }
  if (mt == "t5" || mt == "mt5" || mt == "switch_transformers") return true;
  if (mt.empty() || mt == "umt5" || mt == "longt5" || mt == "pile-t5") return false;
  throw InputError(join_path(fc.dir, "config.json"), "model_type",
                   "a Unigram tokenizer.json without its SentencePiece model file is read for T5 models; "
                   "transformers picks model_type " +
                       quoted(mt) + "'s own tokenizer class, which builds its own pipeline");
}

// Standard base64 with padding, as tokenizers writes the Precompiled charsmap.
std::optional<std::string> base64_decode(const std::string& s) {
  const auto digit = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    const int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=') : 0;
    uint32_t group = 0;
    for (int k = 0; k < 4; ++k) {
      const int d = k >= 4 - pad ? 0 : digit(s[i + size_t(k)]);
      if (d < 0) return std::nullopt;
      group = (group << 6) | uint32_t(d);
    }
    out += char((group >> 16) & 0xFF);
    if (pad < 2) out += char((group >> 8) & 0xFF);
    if (pad < 1) out += char(group & 0xFF);
  }
  return out;
}

// The bytes of a Precompiled step's charsmap, checked as libsentencepiece will read them.
std::string precompiled_charsmap(const json& step, const std::string& path, const std::string& field) {
  const auto it = step.find("precompiled_charsmap");
  if (it == step.end() || !it->is_string()) {
    throw InputError(path, field + ".precompiled_charsmap", "expected a base64 string");
  }
  const auto bytes = base64_decode(it->get<std::string>());
  if (!bytes) throw InputError(path, field + ".precompiled_charsmap", "not valid base64");
  if (const auto problem = precompiled_charsmap_problem(*bytes)) {
    throw InputError(path, field + ".precompiled_charsmap", "not a SentencePiece charsmap: " + *problem);
  }
  return *bytes;
}

// The charsmap the normalizer gives (empty for none). With T5Tokenizer, the first Precompiled
// step's, as transformers takes it (the other steps are dropped); run as written, Precompiled must
// be the only step.
std::string read_normalizer(const json& tj, const std::string& path, bool t5_class) {
  const auto it = tj.find("normalizer");
  if (it == tj.end() || it->is_null()) return "";
  std::vector<std::pair<const json*, std::string>> steps;  // each with its field, for errors
  if (type_of(*it) == "Sequence") {
    const auto list = it->find("normalizers");
    if (list == it->end() || !list->is_array()) throw InputError(path, "normalizer.normalizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      steps.emplace_back(&(*list)[i], "normalizer.normalizers[" + std::to_string(i) + "]");
    }
  } else {
    steps.emplace_back(&*it, "normalizer");
  }
  std::string charsmap;
  bool found = false;
  for (const auto& [step, field] : steps) {
    const std::string type = type_of(*step);
    if (type.empty()) throw InputError(path, field, "expected an object with a \"type\"");
    if (t5_class) {
      if (!known_normalizer(type)) throw InputError(path, field + ".type", "unknown normalizer " + quoted(type));
    } else if (type != "Precompiled" || found) {
      throw InputError(path, field,
                       "normalizer " + quoted(type) +
                           " is not supported: a Unigram tokenizer.json run as written may have one Precompiled "
                           "normalizer (T5's)");
    }
    if (type == "Precompiled" && !found) {
      charsmap = precompiled_charsmap(*step, path, field);
      found = true;
    }
  }
  return charsmap;
}

// Metaspace as T5 has it: "▁", prepended to every word, words split before each "▁".
void expect_t5_metaspace(const json& j, const std::string& path, const std::string& field) {
  const auto fail = [&](const std::string& what) {
    throw InputError(path, field,
                     what +
                         "; a Unigram tokenizer.json run as written is supported with T5's Metaspace (replacement "
                         "\"\xE2\x96\x81\", prepend_scheme \"always\", split true)");
  };
  if (type_of(j) != "Metaspace") fail("expected Metaspace, found " + quoted(type_of(j)));
  if (j.value("replacement", json()) != kMetaspace) fail("replacement is not \"\xE2\x96\x81\"");
  // Files written before prepend_scheme existed say add_prefix_space instead.
  const json scheme = j.value("prepend_scheme", json());
  const bool always = scheme.is_null() ? j.value("add_prefix_space", json()) == true : scheme == "always";
  if (!always) fail("the prefix is not prepended always");
  if (j.value("split", json(true)) != true) fail("split is not true");
}

// T5's pre-tokenizer: WhitespaceSplit, then Metaspace.
void expect_t5_pre_tokenizer(const json& tj, const std::string& path) {
  const json pre = tj.value("pre_tokenizer", json());
  const json* steps = type_of(pre) == "Sequence" && pre.contains("pretokenizers") ? &pre["pretokenizers"] : nullptr;
  if (steps == nullptr || !steps->is_array() || steps->size() != 2 || type_of((*steps)[0]) != "WhitespaceSplit") {
    throw InputError(path, "pre_tokenizer",
                     "a Unigram tokenizer.json run as written is supported with T5's pre-tokenizer: a Sequence of "
                     "WhitespaceSplit and Metaspace");
  }
  expect_t5_metaspace((*steps)[1], path, "pre_tokenizer.pretokenizers[1]");
}

// The ids a TemplateProcessing puts before and after the text ($A), or none without one.
void read_post_processor(const json& tj, const std::string& path, UnigramJson* out) {
  const json post = tj.value("post_processor", json());
  if (post.is_null()) return;
  if (type_of(post) != "TemplateProcessing" || !post.contains("single") || !post["single"].is_array()) {
    throw InputError(path, "post_processor",
                     "a Unigram tokenizer.json run as written is supported with a TemplateProcessing "
                     "post-processor or none, found " +
                         quoted(type_of(post)));
  }
  const json& single = post["single"];
  bool seen_text = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string field = "post_processor.single[" + std::to_string(i) + "]";
    const json& piece = single[i];
    if (piece.is_object() && piece.contains("Sequence")) {
      if (seen_text || !piece["Sequence"].is_object() || piece["Sequence"].value("id", json()) != "A") {
        throw InputError(path, field, "expected the text ($A) once");
      }
      seen_text = true;
      continue;
    }
    const json name = piece.is_object() && piece.contains("SpecialToken") && piece["SpecialToken"].is_object()
                          ? piece["SpecialToken"].value("id", json())
                          : json();
    const json* special = name.is_string() && post.contains("special_tokens") && post["special_tokens"].is_object() &&
                                  post["special_tokens"].contains(name.get<std::string>())
                              ? &post["special_tokens"][name.get<std::string>()]
                              : nullptr;
    if (special == nullptr || !special->is_object() || !special->contains("ids") || !(*special)["ids"].is_array()) {
      throw InputError(path, field, "expected {\"Sequence\": {\"id\": \"A\"}} or a SpecialToken in special_tokens");
    }
    for (const json& id : (*special)["ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        throw InputError(path, "post_processor.special_tokens." + name.get<std::string>() + ".ids",
                         "expected non-negative integers");
      }
      (seen_text ? out->suffix_ids : out->prefix_ids).push_back(id.get<int64_t>());
    }
  }
  if (!seen_text) throw InputError(path, "post_processor.single", "the text ($A) is missing");
}

}  // namespace

UnigramJson read_unigram_tokenizer_json(const std::string& path, const json& tj, const FolderConfig& fc) {
  const bool t5_class = reads_as_t5_tokenizer(path, fc);
  UnigramJson out;
  out.runs_as_written = !t5_class;
  if (t5_class) {
    out.eos_token = "</s>";
    out.pad_token = "<pad>";
  }
  const json& model = tj["model"];  // an object (load_tokenizer checked)

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_array() || vocab->empty()) {
    throw InputError(path, "model.vocab", "expected a non-empty array of [piece, score]");
  }
  const int64_t n = int64_t(vocab->size());
  int64_t unk_id = 2;  // T5Tokenizer's Unigram(unk_id=2)
  if (t5_class) {
    if (n <= unk_id) {
      throw InputError(path, "model.vocab",
                       "T5Tokenizer's unknown piece is id 2; there are only " + std::to_string(n) + " pieces");
    }
  } else {
    const auto unk = model.find("unk_id");
    if (unk == model.end() || !unk->is_number_integer() || unk->get<int64_t>() < 0 || unk->get<int64_t>() >= n) {
      throw InputError(path, "model.unk_id", "expected the id of a piece (0 to " + std::to_string(n - 1) + ")");
    }
    unk_id = unk->get<int64_t>();
    if (model.value("byte_fallback", json(false)) != false) {
      throw InputError(path, "model.byte_fallback", "byte fallback is not supported for Unigram (T5 has none)");
    }
  }

  const std::string charsmap = read_normalizer(tj, path, t5_class);
  if (!t5_class) {
    expect_t5_pre_tokenizer(tj, path);
    expect_t5_metaspace(tj.value("decoder", json()), path, "decoder");
    read_post_processor(tj, path, &out);
  }

  // libsentencepiece wants each piece once and none empty; HF would take a repeated piece's last id.
  std::string& proto = out.model_proto;
  std::unordered_set<std::string> seen;
  out.scores.reserve(size_t(n));
  for (int64_t id = 0; id < n; ++id) {
    const json& entry = (*vocab)[size_t(id)];
    const std::string field = "model.vocab[" + std::to_string(id) + "]";
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      throw InputError(path, field, "expected [piece, score]");
    }
    const std::string piece = entry[0].get<std::string>();
    if (piece.empty()) throw InputError(path, field, "empty piece");
    if (!seen.insert(piece).second) throw InputError(path, field, "piece " + quoted(piece) + " repeated");
    const double score = entry[1].get<double>();
    out.scores.push_back(score);
    std::string sp;
    proto::put_bytes(&sp, proto::kPiece, piece);
    // The float only steers libsentencepiece's own segmentation, of which only the normalized
    // text is used; HF's Viterbi gets the double.
    proto::put_float(&sp, proto::kScore, float(std::clamp(score, double(-FLT_MAX), double(FLT_MAX))));
    proto::put_varint(&sp, proto::kType, id == unk_id ? proto::kUnknown : proto::kNormal);
    proto::put_bytes(&proto, proto::kPieces, sp);
  }
  std::string trainer;
  proto::put_varint(&trainer, proto::kModelType, proto::kUnigram);
  proto::put_varint(&trainer, proto::kVocabSize, uint64_t(n));
  proto::put_varint(&trainer, proto::kUnkId, uint64_t(unk_id));
  proto::put_bytes(&trainer, proto::kUnkPiece, (*vocab)[size_t(unk_id)][0].get<std::string>());
  proto::put_bytes(&proto, proto::kTrainerSpec, trainer);
  // libsentencepiece's whitespace handling (drop leading, trailing and repeated spaces, "▁" before
  // each word) is T5's WhitespaceSplit + Metaspace; the T5 path turns the other Unicode whitespace,
  // where WhitespaceSplit also cuts, into spaces before normalizing.
  std::string normalizer;
  if (!charsmap.empty()) proto::put_bytes(&normalizer, proto::kPrecompiledCharsmap, charsmap);
  proto::put_varint(&normalizer, proto::kAddDummyPrefix, 1);
  proto::put_varint(&normalizer, proto::kRemoveExtraWhitespaces, 1);
  proto::put_varint(&normalizer, proto::kEscapeWhitespaces, 1);
  proto::put_bytes(&proto, proto::kNormalizerSpec, normalizer);
  return out;
}

}  // namespace gqa::tok
