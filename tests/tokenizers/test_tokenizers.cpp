// Tokenizer tests. The bar: the same ids as Hugging Face on the corpus (scripts/make-corpus.sh) and
// on edge cases.
//  - HfParity.*: every folder built by tests/oracle/tokenizer_oracle.py (GQA_TOKENIZER_FIXTURES)
//    against the ids transformers produced for the same texts;
//  - Gpt2Reference.*: GPT-2 ids fixed in examples/assets/gpt2/reference-encodings.jsonl (no Python);
//  - BadInput.*: every malformed file is an InputError naming the file, never a crash or hang;
//  - UnigramJson.*: tokenizer.json (Unigram) without spiece.model, on small files made here.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/tokenizers/tokenizer.h"
#include "core/tokenizers/unicode.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

// Printable form of a text snippet for failure messages.
std::string escaped(const std::string& s, size_t max_len = 160) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

std::vector<int64_t> slice(const std::vector<int64_t>& ids, size_t from, size_t to) {
  to = std::min(to, ids.size());
  return from < to ? std::vector<int64_t>(ids.begin() + from, ids.begin() + to) : std::vector<int64_t>();
}

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// Equality of id lists; on mismatch the first differing position, the ids there (and the text
// they decode to) and the text just before.
::testing::AssertionResult same_ids(const std::string& what, const std::string& text,
                                    const std::vector<int64_t>& expected, const std::vector<int64_t>& got,
                                    const gqa::Tokenizer& tok) {
  if (expected == got) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < expected.size() && i < got.size() && expected[i] == got[i]) ++i;
  const std::string before = tok.decode(slice(expected, 0, i), false);
  const auto want = slice(expected, i, i + 6), have = slice(got, i, i + 6);
  return ::testing::AssertionFailure() << what << ": first mismatch at token " << i << " (expected " << expected.size()
                                       << " ids, got " << got.size() << ")\n  expected " << ids_str(want) << " = \""
                                       << escaped(tok.decode(want, false), 80) << "\"\n  got      " << ids_str(have)
                                       << " = \"" << escaped(tok.decode(have, false), 80) << "\"\n  text before: \""
                                       << escaped(before.size() > 60 ? before.substr(before.size() - 60) : before)
                                       << "\"\n  text: \"" << escaped(text) << "\"";
}

// ---------------------------------------------------------------------------------------------
// Parity with the oracle.

const char* fixtures_dir() { return std::getenv("GQA_TOKENIZER_FIXTURES"); }

#define REQUIRE_FIXTURES()                                                      \
  if (fixtures_dir() == nullptr) {                                              \
    GTEST_SKIP() << "GQA_TOKENIZER_FIXTURES not set (run through ctest, which " \
                    "runs tests/oracle/tokenizer_oracle.py first)";             \
  }

const std::vector<std::string>& oracle_texts() {
  static const std::vector<std::string> texts = [] {
    const json j = json::parse(read_text(fs::path(fixtures_dir()) / "texts.json"));
    return j.at("texts").get<std::vector<std::string>>();
  }();
  return texts;
}

const json& expected_for(const std::string& name) {
  static std::map<std::string, json> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache.emplace(name, json::parse(read_text(fs::path(fixtures_dir()) / name / "expected.json"))).first;
  }
  return it->second;
}

std::optional<int64_t> opt_id(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<int64_t>(j.get<int64_t>());
}

struct Case {
  const char* name;
  // decode(encode(x), false) == x. Not with SentencePiece (it normalizes), add_prefix_space
  // (adds a space) or texts holding an lstrip token (it eats one): `lossy_token`.
  bool round_trip;
  const char* lossy_token = nullptr;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class HfParity : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    REQUIRE_FIXTURES();
    tok_ = gqa::load_tokenizer((fs::path(fixtures_dir()) / GetParam().name).string());
    ex_ = &expected_for(GetParam().name);
    // Texts where HF is known to differ from a faithful SentencePiece (see the oracle script);
    // reported, not compared.
    if (ex_->contains("hf_quirk")) {
      for (int i : (*ex_)["hf_quirk"]) skip_.insert(size_t(i));
    }
  }
  std::unique_ptr<gqa::Tokenizer> tok_;
  const json* ex_ = nullptr;
  std::set<size_t> skip_;
};

// One test per folder (each ctest process reloads the files): special ids, ids without and with
// special tokens, decoding, and the byte-level round trip.
TEST_P(HfParity, MatchesHf) {
  EXPECT_EQ(tok_->vocab_size(), (*ex_)["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok_->bos_id(), opt_id((*ex_)["bos_id"]));
  EXPECT_EQ(tok_->eos_id(), opt_id((*ex_)["eos_id"]));
  EXPECT_EQ(tok_->pad_id(), opt_id((*ex_)["pad_id"]));

  const auto& texts = oracle_texts();
  const auto& ids = (*ex_)["ids"];
  const auto& ids_special = (*ex_)["ids_special"];
  const auto& decoded = (*ex_)["decoded"];
  ASSERT_EQ(ids.size(), texts.size());
  size_t compared = 0, tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (skip_.count(i)) continue;
    const std::string& text = texts[i];
    const auto expected = ids[i].get<std::vector<int64_t>>();
    const auto got = tok_->encode(text);
    ASSERT_TRUE(same_ids("text " + std::to_string(i), text, expected, got, *tok_));
    ASSERT_TRUE(same_ids("text " + std::to_string(i) + " with special tokens", text,
                         ids_special[i].get<std::vector<int64_t>>(), tok_->encode_with_special(text), *tok_));
    // HF's decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).
    ASSERT_EQ(tok_->decode(got, true), decoded[i].get<std::string>())
        << "decoding text " << i << ": \"" << escaped(text) << "\"";
    const char* lossy = GetParam().lossy_token;
    if (GetParam().round_trip && !(lossy && text.find(lossy) != std::string::npos)) {
      ASSERT_EQ(tok_->decode(got, false), text) << "round trip of \"" << escaped(text) << "\"";
    }
    ++compared;
    tokens += expected.size();
  }
  std::cout << "[ parity   ] " << GetParam().name << ": " << compared << " texts, " << tokens
            << " tokens identical to HF";
  if (!skip_.empty()) std::cout << " (" << skip_.size() << " texts with HF's normalizer quirk skipped)";
  std::cout << "\n";
}

INSTANTIATE_TEST_SUITE_P(Folders, HfParity,
                         ::testing::Values(Case{"gpt2_files", true}, Case{"gpt2_json", true},
                                           Case{"gpt2_json_strmerges", true}, Case{"gpt2_prefix_json", false},
                                           Case{"llama3_bpe", true, "<|mask|>"}, Case{"t5_spm", false},
                                           Case{"t5_spm_json", false}, Case{"t5_json_only", false},
                                           Case{"t5_json_only_backend", false}, Case{"t5_json_only_extra_steps", false},
                                           Case{"llama2_spm", false}, Case{"llama2_spm_legacy", false},
                                           Case{"llama2_spm_json", false}, Case{"llama2_spm_json_prepend", false}),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(HfOracle, FullCorpusGpt2Encode) {
  REQUIRE_FIXTURES();
  const std::string corpus = read_text(fs::path(fixtures_dir()) / "corpus_train.txt");
  ASSERT_GT(corpus.size(), 1000000u);
  const auto tok = gqa::load_tokenizer((fs::path(fixtures_dir()) / "gpt2_files").string());
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok->encode(corpus);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "[ timing   ] GPT-2 encode of the train corpus: %.1f MB -> %zu tokens in %.2f s "
      "(%.1f MB/s)\n",
      corpus.size() / 1e6, ids.size(), s, corpus.size() / 1e6 / s);
  EXPECT_EQ(tok->decode(ids, false), corpus);
  // With tokenizer_oracle.py --full-corpus, HF's ids for the whole file.
  const fs::path full = fs::path(fixtures_dir()) / "corpus_train_gpt2_ids.json";
  if (fs::exists(full)) {
    const auto expected = json::parse(read_text(full)).get<std::vector<int64_t>>();
    EXPECT_TRUE(same_ids("train corpus", corpus.substr(0, 200), expected, ids, *tok));
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 reference encodings and helpers: no Python needed.

std::string gpt2_dir() { return std::string(GQA_SOURCE_DIR) + "/examples/assets/gpt2"; }

TEST(Gpt2Reference, MatchesReferenceEncodings) {
  const fs::path ref = fs::path(gpt2_dir()) / "reference-encodings.jsonl";
  const auto tok = gqa::load_tokenizer(gpt2_dir());
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->pad_id(), std::nullopt);
  std::istringstream lines(read_text(ref));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    const std::string text = j.at("text").get<std::string>();
    const auto expected = j.at("ids").get<std::vector<int64_t>>();
    EXPECT_TRUE(same_ids("reference", text, expected, tok->encode(text), *tok));
    EXPECT_EQ(tok->encode_with_special(text), expected);  // GPT-2 adds nothing
    EXPECT_EQ(tok->decode(expected), text);
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(Gpt2Reference, SpecialTokenInText) {
  const auto tok = gqa::load_tokenizer(gpt2_dir());
  EXPECT_EQ(tok->encode("a<|endoftext|>b"), (std::vector<int64_t>{64, 50256, 65}));
  EXPECT_EQ(tok->decode({64, 50256, 65}, true), "ab");
  EXPECT_EQ(tok->decode({64, 50256, 65}, false), "a<|endoftext|>b");
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_EQ(tok->decode({64, 999999, -1}), "a");  // unknown ids are skipped, as in HF
}

TEST(Gpt2Reference, InvalidUtf8IsEncodedBytewise) {
  const auto tok = gqa::load_tokenizer(gpt2_dir());
  const std::string bad = "ok \xff\xfe caf\xc3 \xe2\x82 end\x80";
  const auto ids = tok->encode(bad);
  EXPECT_FALSE(ids.empty());
  // Every byte survives encoding; decoding is lossy exactly like String::from_utf8_lossy.
  EXPECT_EQ(tok->decode(ids, false), gqa::tok::utf8_lossy(bad));
}

TEST(Gpt2Reference, ConcurrentEncodeIsSafe) {
  const auto tok = gqa::load_tokenizer(gpt2_dir());
  const std::string text = "The quick brown fox jumps over the lazy dog. 12345 \xF0\x9F\xA4\x96!";
  const auto want = tok->encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) ok[t] += tok->encode(text + std::to_string(i % 7)).size() > 0;
      ok[t] += tok->encode(text) == want ? 1000 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 1200);
}

TEST(Unicode, Utf8LossyFollowsMaximalSubparts) {
  using gqa::tok::utf8_lossy;
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(utf8_lossy("a\xFF"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  // A truncated 3-byte sequence is one replacement; the byte after it starts afresh.
  EXPECT_EQ(utf8_lossy("\xE2\x82"
                       "a"),
            "\xEF\xBF\xBD"
            "a");
  // Surrogates and overlongs: every byte is its own maximal subpart.
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\xA4"), "\xEF\xBF\xBD");
}

// ---------------------------------------------------------------------------------------------
// Bad input: InputError naming the file.

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("gqa_tok_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Loading must throw an InputError whose message contains every string in `needles`.
  void expect_error(const std::vector<std::string>& needles) {
    try {
      gqa::load_tokenizer(dir_.string());
      ADD_FAILURE() << "expected InputError";
    } catch (const gqa::InputError& e) {
      for (const auto& n : needles) {
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
            << "message \"" << e.what() << "\" lacks \"" << n << "\"";
      }
    }
  }

  // A tiny valid byte-level tokenizer.json: bytes a, b, c and the merge "a b".
  static json small_tokenizer_json() {
    json vocab = json::object();
    const auto& table = gqa::tok::byte_to_unicode();
    for (int b = 0; b < 256; ++b) vocab[table[b]] = b;
    vocab["ab"] = 256;
    return json{{"version", "1.0"},
                {"added_tokens", json::array()},
                {"normalizer", nullptr},
                {"pre_tokenizer",
                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
                {"post_processor", nullptr},
                {"decoder", {{"type", "ByteLevel"}}},
                {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}}}};
  }

  fs::path dir_;
};

TEST_F(BadInput, MissingFolder) {
  dir_ /= "does_not_exist";
  expect_error({"does_not_exist", "not a directory"});
}

TEST_F(BadInput, EmptyFolder) {
  expect_error({"tokenizer", "no tokenizer.json, vocab.json+merges.txt or tokenizer.model"});
}

TEST_F(BadInput, SmallTokenizerJsonWorks) {
  write_text(dir_ / "tokenizer.json", small_tokenizer_json().dump());
  const auto tok = gqa::load_tokenizer(dir_.string());
  EXPECT_EQ(tok->encode("abc ab"), (std::vector<int64_t>{256, 'c', ' ', 256}));
  EXPECT_EQ(tok->decode(tok->encode("abc ab")), "abc ab");
  EXPECT_EQ(tok->vocab_size(), 257);
  EXPECT_EQ(tok->bos_id(), std::nullopt);
}

TEST_F(BadInput, TruncatedTokenizerJson) {
  const std::string full = small_tokenizer_json().dump();
  write_text(dir_ / "tokenizer.json", full.substr(0, full.size() / 2));
  expect_error({"tokenizer.json", "malformed JSON"});
}

TEST_F(BadInput, TokenizerJsonNotAnObject) {
  write_text(dir_ / "tokenizer.json", "[1, 2, 3]");
  expect_error({"tokenizer.json"});
}

TEST_F(BadInput, MergeWithOneToken) {
  json j = small_tokenizer_json();
  j["model"]["merges"] = json::array({"a b", "abc"});
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "model.merges[1]"});
}

TEST_F(BadInput, MergeOfUnknownToken) {
  json j = small_tokenizer_json();
  j["model"]["merges"] = json::array({json::array({"a", "zz"})});
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "model.merges[0]", "zz"});
}

TEST_F(BadInput, VocabIdOutOfRange) {
  json j = small_tokenizer_json();
  j["model"]["vocab"]["huge"] = 2000000000;
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "out of range"});
  j["model"]["vocab"]["huge"] = -5;
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "model.vocab"});
  j["model"]["vocab"]["huge"] = "seven";
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "model.vocab"});
}

TEST_F(BadInput, BadRegex) {
  json j = small_tokenizer_json();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "pre_tokenizer.pretokenizers[0].pattern.Regex"});
}

TEST_F(BadInput, UnsupportedModelType) {
  json j = small_tokenizer_json();
  j["model"]["type"] = "WordPiece";
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "WordPiece"});
}

TEST_F(BadInput, MergesTxtMalformedLine) {
  write_text(dir_ / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_text(dir_ / "merges.txt", "#version: 0.2\na b\nabc\n");
  expect_error({"merges.txt", "line 3"});
  write_text(dir_ / "merges.txt", "#version: 0.2\na b c\n");
  expect_error({"merges.txt", "line 2"});
}

TEST_F(BadInput, VocabJsonNotAnObject) {
  write_text(dir_ / "vocab.json", R"(["a", "b"])");
  write_text(dir_ / "merges.txt", "#version: 0.2\n");
  expect_error({"vocab.json", "expected a JSON object"});
}

TEST_F(BadInput, CorruptSentencePieceModel) {
  write_text(dir_ / "spiece.model", std::string("\x0a\xff\xff\xff\x0f garbage", 14));
  expect_error({"spiece.model"});
}

TEST_F(BadInput, MalformedConfigJson) {
  write_text(dir_ / "tokenizer.json", small_tokenizer_json().dump());
  write_text(dir_ / "config.json", "{\"model_type\": ");
  expect_error({"config.json", "malformed JSON"});
}

// Found with tests/fuzz/fuzz_tokenizer_json (docs/robustness.md, "Fuzzing"): a post-processor's
// special id beyond the vocabulary was added to every encoding (an embedding lookup out of range
// later); it is now refused when the tokenizer is loaded.
TEST_F(BadInput, FuzzPostProcessorIdOutsideVocabulary) {
  json j = small_tokenizer_json();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {2000}}, {"tokens", {"<s>"}}}}}}};
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "post_processor.special_tokens.<s>", "id 2000 is outside the vocabulary (257 ids)"});
  j["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", {"a", 97}}, {"sep", {"b", -1}}};
  write_text(dir_ / "tokenizer.json", j.dump());
  expect_error({"tokenizer.json", "post_processor.sep", "id -1"});
  j["post_processor"]["sep"] = {"b", 98};
  write_text(dir_ / "tokenizer.json", j.dump());
  EXPECT_EQ(gqa::load_tokenizer(dir_.string())->encode_with_special("c"), (std::vector<int64_t>{97, 'c', 98}));
}

// Found with the fuzz targets: Sequence pre-tokenizers nested 20000 deep overflowed the stack (a
// crash) while being walked. JSON nested deeper than 512 levels is refused when read.
TEST_F(BadInput, FuzzDeeplyNestedTokenizerJson) {
  std::string pre;
  const int depth = 20000;
  for (int i = 0; i < depth; ++i) pre += R"({"type": "Sequence", "pretokenizers": [)";
  pre += R"({"type": "ByteLevel"})";
  for (int i = 0; i < depth; ++i) pre += "]}";
  write_text(dir_ / "tokenizer.json",
             R"({"model": )" + small_tokenizer_json()["model"].dump() + R"(, "pre_tokenizer": )" + pre + "}");
  expect_error({"tokenizer.json", "nested deeper than 512"});
}

// ---------------------------------------------------------------------------------------------
// A Unigram tokenizer.json without its spiece.model, as transformers 5 saves T5 (the oracle's
// t5_json_only* folders hold real ones): small files with the ids transformers 5 gives for them.

std::string base64(const std::string& bytes) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t group = 0;
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    for (size_t k = 0; k < 3; ++k) {
      group = (group << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (size_t k = 0; k < 4; ++k) out += k <= n ? digits[(group >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

std::string base64_decode(const std::string& s) {
  std::string out;
  uint32_t group = 0;
  int bits = 0;
  for (char c : s) {
    const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = std::strchr(digits, c);
    if (c == '=' || at == nullptr) break;
    group = (group << 6) | uint32_t(at - digits);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((group >> bits) & 0xFF);
    }
  }
  return out;
}

class UnigramJson : public BadInput {
 protected:
  // T5's pipeline without a charsmap. "ab" costs -2 - 1e-12: "▁ab" is "▁" "a" "b" (-3) in
  // double precision, as in HF, but a tie with "▁" "ab" once the scores are floats.
  static json t5_json() {
    const json metaspace = {
        {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
    json added = json::array();
    for (const char* t : {"<pad>", "</s>", "<unk>"}) {
      added.push_back({{"id", added.size()}, {"content", t}, {"special", true}, {"normalized", false}});
    }
    return {{"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer",
             {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "WhitespaceSplit"}}, metaspace})}}},
            {"post_processor",
             {{"type", "TemplateProcessing"},
              {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                      {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
              {"special_tokens", {{"</s>", {{"id", "</s>"}, {"ids", {1}}, {"tokens", {"</s>"}}}}}}}},
            {"decoder", metaspace},
            {"model",
             {{"type", "Unigram"},
              {"unk_id", 2},
              {"byte_fallback", false},
              {"vocab", json::array({{"<pad>", 0.0},
                                     {"</s>", 0.0},
                                     {"<unk>", 0.0},
                                     {"\xE2\x96\x81", -1.0},
                                     {"a", -1.0},
                                     {"b", -1.0},
                                     {"ab", -2.0 - 1e-12},
                                     {"c", -1.5}})}}}};
  }
  // `tokenizer_class` T5Tokenizer: transformers rebuilds T5's pipeline; PreTrainedTokenizerFast:
  // it runs the file as written.
  void write(const json& tokenizer_json, const std::string& tokenizer_class) {
    write_text(dir_ / "tokenizer.json", tokenizer_json.dump());
    write_text(dir_ / "tokenizer_config.json", json{{"tokenizer_class", tokenizer_class},
                                                    {"extra_ids", 0},
                                                    {"eos_token", "</s>"},
                                                    {"pad_token", "<pad>"},
                                                    {"unk_token", "<unk>"}}
                                                   .dump());
  }
};

// transformers 5, both classes: [3, 4, 5, 3, 7, 4, 3, 2] + [1], decoded "ab ca " (tests/oracle
// has the real files; these ids were taken from AutoTokenizer on this file).
TEST_F(UnigramJson, SmallFileGivesHfIdsWithDoubleScores) {
  for (const char* cls : {"T5Tokenizer", "PreTrainedTokenizerFast"}) {
    write(t5_json(), cls);
    const auto tok = gqa::load_tokenizer(dir_.string());
    EXPECT_EQ(tok->encode("ab  ca x"), (std::vector<int64_t>{3, 4, 5, 3, 7, 4, 3, 2})) << cls;
    EXPECT_EQ(tok->encode_with_special("ab  ca x"), (std::vector<int64_t>{3, 4, 5, 3, 7, 4, 3, 2, 1})) << cls;
    EXPECT_EQ(tok->decode(tok->encode("ab  ca x")), "ab ca ") << cls;  // <unk> skipped, its "▁" kept
    EXPECT_EQ(tok->vocab_size(), 8) << cls;
    EXPECT_EQ(tok->eos_id(), 1) << cls;
    EXPECT_EQ(tok->pad_id(), 0) << cls;
    EXPECT_EQ(tok->bos_id(), std::nullopt) << cls;
  }
}

// T5Tokenizer keeps only the charsmap of the normalizer and its own pre-tokenizer: other known
// steps are dropped, as transformers drops them; a type HF does not know fails there too.
TEST_F(UnigramJson, T5TokenizerDropsOtherStepsButNotUnknownOnes) {
  json j = t5_json();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "Lowercase"}}})}};
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  write(j, "T5Tokenizer");
  EXPECT_EQ(gqa::load_tokenizer(dir_.string())->encode("AB ab"), (std::vector<int64_t>{3, 2, 3, 4, 5}));
  j["normalizer"]["normalizers"].push_back({{"type", "Frobnicate"}});
  write(j, "T5Tokenizer");
  expect_error({"tokenizer.json", "normalizer.normalizers[1].type", "unknown normalizer \"Frobnicate\""});
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "not base64!"}};
  write(j, "T5Tokenizer");
  expect_error({"tokenizer.json", "normalizer.precompiled_charsmap", "base64"});
  j["model"]["vocab"] = json::array({{"<pad>", 0.0}, {"</s>", 0.0}});
  write(j, "T5Tokenizer");
  expect_error({"tokenizer.json", "model.vocab", "id 2"});
}

// Run as written, the file must be T5's pipeline: every other step is refused by its field.
TEST_F(UnigramJson, RunAsWrittenRefusesStepsOtherThanT5s) {
  const auto refused = [&](const std::function<void(json&)>& edit, const std::vector<std::string>& needles) {
    json j = t5_json();
    edit(j);
    write(j, "PreTrainedTokenizerFast");
    expect_error(needles);
  };
  refused([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, {"tokenizer.json", "normalizer", "Lowercase"});
  refused(
      [](json& j) {
        j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
      },
      {"normalizer.normalizers[0]", "NFKC"});
  refused([](json& j) { j["pre_tokenizer"] = j["decoder"]; }, {"pre_tokenizer", "WhitespaceSplit"});
  refused([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"] = "first"; },
          {"pre_tokenizer.pretokenizers[1]", "always"});
  refused([](json& j) { j["decoder"] = nullptr; }, {"decoder", "Metaspace"});
  refused(
      [](json& j) {
        j["post_processor"] = {{"type", "RobertaProcessing"}};
      },
      {"post_processor", "RobertaProcessing"});
  refused([](json& j) { j["post_processor"]["special_tokens"]["</s>"]["ids"] = {99}; },
          {"post_processor.special_tokens", "id 99 is outside the vocabulary (8 ids)"});
  refused([](json& j) { j["model"]["byte_fallback"] = true; }, {"model.byte_fallback"});
  refused([](json& j) { j["model"]["unk_id"] = 8; }, {"model.unk_id"});
  refused([](json& j) { j["model"]["vocab"][7][0] = "a"; }, {"model.vocab[7]", "repeated"});
  refused([](json& j) { j["model"]["vocab"][7][0] = ""; }, {"model.vocab[7]", "empty"});
  refused([](json& j) { j["model"]["vocab"][7] = {"c"}; }, {"model.vocab[7]", "[piece, score]"});
}

// A class with a pipeline of its own (not T5's, not the file's) is refused, not guessed.
TEST_F(UnigramJson, OtherTokenizerClassesAreRefused) {
  write(t5_json(), "AlbertTokenizer");
  expect_error({"tokenizer_config.json", "tokenizer_class", "\"AlbertTokenizer\""});
  fs::remove(dir_ / "tokenizer_config.json");
  write_text(dir_ / "config.json", R"({"model_type": "albert"})");
  expect_error({"config.json", "model_type", "\"albert\""});
  write_text(dir_ / "config.json", R"({"model_type": "t5"})");
  EXPECT_EQ(gqa::load_tokenizer(dir_.string())->encode_with_special("ab"), (std::vector<int64_t>{3, 4, 5, 1}));
}

// libsentencepiece reads a charsmap unchecked (offsets, string indices, match counts); a
// malformed one must be an InputError before it gets there.
TEST_F(UnigramJson, MalformedCharsmapsAreRefused) {
  const auto with_charsmap = [&](const std::string& bytes) {
    json j = t5_json();
    j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", base64(bytes)}};
    write(j, "T5Tokenizer");
  };
  const std::string le8 = std::string("\x08\0\0\0", 4);
  for (const std::string& bytes : {std::string("\x01\0\0", 3), std::string("\xff\xff\0\0xxxx", 8),
                                   le8 + std::string(8, '\0') + "a",                      // strings not NUL-terminated
                                   le8 + std::string(8, '\0') + std::string(1, '\0')}) {  // root outside the trie
    with_charsmap(bytes);
    expect_error({"tokenizer.json", "normalizer.precompiled_charsmap", "not a SentencePiece charsmap"});
  }
}

// The real T5 charsmap with random bytes of its trie overwritten: a clean load (then encoding
// works) or an InputError, never a crash.
TEST_F(UnigramJson, CorruptedRealCharsmapNeverCrashes) {
  REQUIRE_FIXTURES();
  const json original = json::parse(read_text(fs::path(fixtures_dir()) / "t5_json_only" / "tokenizer.json"));
  const std::string charsmap = base64_decode(original["normalizer"]["precompiled_charsmap"].get<std::string>());
  ASSERT_GT(charsmap.size(), 1000u);
  const uint32_t trie_bytes =
      uint32_t(static_cast<unsigned char>(charsmap[0])) | uint32_t(static_cast<unsigned char>(charsmap[1])) << 8 |
      uint32_t(static_cast<unsigned char>(charsmap[2])) << 16 | uint32_t(static_cast<unsigned char>(charsmap[3])) << 24;
  ASSERT_LT(trie_bytes, charsmap.size());
  std::mt19937 rng(20);
  int loaded = 0, refused = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::string bytes = charsmap;
    for (int k = 0; k < 8; ++k) bytes[4 + rng() % trie_bytes] = char(rng());
    json j = original;
    j["normalizer"]["precompiled_charsmap"] = base64(bytes);
    write_text(dir_ / "tokenizer.json", j.dump());
    try {
      const auto tok = gqa::load_tokenizer(dir_.string());
      tok->encode("Hello world, \xC3\xA9\xC3\x9F \xEF\xBC\xA1 \xE2\x91\xA0 caf\xC3\xA9 12\xC2\xBD");
      ++loaded;
    } catch (const gqa::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("precompiled_charsmap"), std::string::npos) << e.what();
      ++refused;
    }
  }
  std::cout << "[ charsmap ] " << loaded << " corrupted charsmaps loaded, " << refused << " refused\n";
  EXPECT_GT(refused, 0);
}

// The same check guards a .model file's charsmap: a root offset far outside the trie, which
// libsentencepiece itself would follow on the first character it normalizes.
TEST_F(UnigramJson, CorruptedCharsmapInModelFileIsRefused) {
  REQUIRE_FIXTURES();
  const fs::path t5 = fs::path(fixtures_dir()) / "t5_spm";
  const json tj = json::parse(read_text(fs::path(fixtures_dir()) / "t5_json_only" / "tokenizer.json"));
  const std::string charsmap = base64_decode(tj["normalizer"]["precompiled_charsmap"].get<std::string>());
  std::string model = read_text(t5 / "spiece.model");
  const size_t at = model.find(charsmap);  // the same charsmap, stored as it is
  ASSERT_NE(at, std::string::npos);
  fs::copy_file(t5 / "config.json", dir_ / "config.json");
  write_text(dir_ / "spiece.model", model);
  EXPECT_EQ(gqa::load_tokenizer(dir_.string())->encode("ab"), gqa::load_tokenizer(t5.string())->encode("ab"));
  model.replace(at + 4, 4, std::string("\x00\xfc\xff\xff", 4));  // unit 0: offset 0x3fffff
  write_text(dir_ / "spiece.model", model);
  expect_error({"spiece.model", "normalizer_spec.precompiled_charsmap", "root points outside"});
}

}  // namespace
