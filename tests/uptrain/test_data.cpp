// The training data pipeline: document splitting and packing, the token cache, JSONL (LM and
// seq2seq), HDF5 and .bin token files, validation errors, the batch order, and the GPT-2 ids of a
// real corpus against transformers.
#include <gtest/gtest.h>
#if __has_include(<hdf5.h>)
#include <hdf5.h>
#else
#include <hdf5/serial/hdf5.h>  // Debian's serial HDF5 when its folder is not on the include path
#endif
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/tokenizers/tokenizer.h"
#include "tests/test_util.h"
#include "uptrain/data.h"

namespace gqa {
namespace {

using test::TempDir;
using test::write_text;

// One id per byte and </s>-like suffix 1: expected ids can be written down by hand.
class ByteTokenizer : public Tokenizer {
 public:
  ByteTokenizer() {
    size = 256;
    eos = 1;
    suffix_ids = {1};
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (int64_t id : ids) s += char(id);
    return s;
  }

 protected:
  void encode_into(const std::string& text, std::vector<int64_t>* out) const override {
    for (unsigned char c : text) out->push_back(c);
  }
};
constexpr uint32_t kByteEos = 1;

const Tokenizer& gpt2() {
  static const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(GQA_SOURCE_DIR "/examples/assets/gpt2");
  return *tokenizer;
}

std::vector<uint32_t> bytes_of(const std::string& text) { return std::vector<uint32_t>(text.begin(), text.end()); }

std::vector<uint32_t> ids_of(const TokenStream& stream) {
  std::vector<int32_t> ids(size_t(stream.size()));
  stream.read(0, stream.size(), ids.data());
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

void write_gz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), unsigned(text.size())), int(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

template <typename T>
void write_raw(const std::string& path,
               const std::vector<T>& values) {  // host order = little-endian
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(T)));
}

// The InputError message of `load`, or "" when it does not throw one.
template <typename F>
std::string input_error(F load) {
  try {
    load();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

class DataTest : public ::testing::Test {
 protected:
  TempDir dir{"gqa-test-data"};
  DataOptions options(std::vector<std::string> paths) const {
    DataOptions opts;
    opts.paths = std::move(paths);
    opts.cache_dir = dir.file("cache");
    return opts;
  }
  TokenStream load(const std::string& path, const Tokenizer* tokenizer = nullptr, int64_t eos = kByteEos) const {
    static const ByteTokenizer bytes;
    return load_token_stream(options({path}), tokenizer ? tokenizer : &bytes, eos);
  }
};

// ---------------------------------------------------------------------------------------------
// Text documents and packing

TEST_F(DataTest, TextDocumentsAreSeparatedByEndOfTextLinesAndFollowedByEos) {
  // The corpus convention "\n\n<|endoftext|>\n\n", a trailing newline, an empty document, and a
  // separator string inside a line (not a separator).
  write_text(dir.file("a.txt"), "ab\n\n<|endoftext|>\n\ncd e\nf<|endoftext|>\n<|endoftext|>\n\n\n<|endoftext|>\ng\n");
  std::vector<uint32_t> expected = bytes_of("ab");
  expected.push_back(kByteEos);
  for (const std::string doc : {"cd e\nf<|endoftext|>", "g"}) {
    const auto ids = bytes_of(doc);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(kByteEos);
  }
  EXPECT_EQ(ids_of(load(dir.file("a.txt"))), expected);
}

TEST_F(DataTest, PackedWindowsOverlapByOneTokenAndDropTheTail) {
  write_text(dir.file("a.txt"), "abcdefg\n<|endoftext|>\nhij");
  const TokenStream stream = load(dir.file("a.txt"));
  // a b c d e f g EOS h i j EOS = 12 tokens; windows of 3 + 1 target: [0,4) [3,7) [6,10); the tail
  // [9,13) does not fit.
  ASSERT_EQ(stream.size(), 12);
  const PackedSequences packed(stream, 3);
  ASSERT_EQ(packed.count(), 3);
  std::vector<int32_t> window(4);
  const std::vector<std::vector<int32_t>> expected = {
      {'a', 'b', 'c', 'd'}, {'d', 'e', 'f', 'g'}, {'g', kByteEos, 'h', 'i'}};
  for (int64_t i = 0; i < packed.count(); ++i) {
    packed.sequence(i, window.data());
    EXPECT_EQ(window, expected[i]) << "window " << i;
  }
  EXPECT_THROW(packed.sequence(3, window.data()), std::out_of_range);
  EXPECT_EQ(PackedSequences(stream, 11).count(), 1);  // exactly one window of 11 + 1
  EXPECT_NE(input_error([&] { PackedSequences(stream, 12); }).find("shorter than one training window"),
            std::string::npos);
}

TEST_F(DataTest, GptDocumentsAreEncodedWhole) {
  // Encoding paragraphs separately would give other ids for "\n\n" before a word.
  const std::string doc1 = "First paragraph.\n\n  Second one, indented.\n\n\nThird.";
  const std::string doc2 = "Another document's text: 42 tokens?";
  write_text(dir.file("a.txt"), doc1 + "\n\n<|endoftext|>\n\n" + doc2 + "\n");
  const int64_t eos = *gpt2().eos_id();
  std::vector<uint32_t> expected;
  for (const std::string& doc : {doc1, doc2}) {
    for (int64_t id : gpt2().encode(doc)) expected.push_back(uint32_t(id));
    expected.push_back(uint32_t(eos));
  }
  EXPECT_EQ(ids_of(load(dir.file("a.txt"), &gpt2(), eos)), expected);
}

TEST_F(DataTest, LongDocumentsSpanningReadChunksAndGzipMatchPlainText) {
  // Several MiB, so lines and documents cross the reader's 64 KiB chunks.
  std::string text;
  std::vector<uint32_t> expected;
  for (int doc = 0; doc < 3; ++doc) {
    std::string body;
    for (int line = 0; line < 50000 + doc * 7; ++line) body += "line " + std::to_string(line * doc) + " of text\n";
    body += "end";
    text += body + "\n\n<|endoftext|>\n\n";
    const auto ids = bytes_of(body);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(kByteEos);
  }
  ASSERT_GT(text.size(), size_t{2} << 20);
  write_text(dir.file("big.txt"), text);
  write_gz(dir.file("big.txt.gz"), text);
  EXPECT_EQ(ids_of(load(dir.file("big.txt"))), expected);
  EXPECT_EQ(ids_of(load(dir.file("big.txt.gz"))), expected);
}

TEST_F(DataTest, FoldersTakeTheirFilesSortedByNameAndSkipHiddenOnes) {
  files::remove_all(dir.file("corpus"));
  ASSERT_EQ(::mkdir(dir.file("corpus").c_str(), 0755), 0);
  write_text(dir.file("corpus/b.txt"), "b");
  write_text(dir.file("corpus/a.txt"), "a");
  write_text(dir.file("corpus/.hidden"), "h");
  ASSERT_EQ(::mkdir(dir.file("corpus/sub").c_str(), 0755), 0);
  const TokenStream stream = load(dir.file("corpus"));
  EXPECT_EQ(ids_of(stream), (std::vector<uint32_t>{'a', kByteEos, 'b', kByteEos}));
  EXPECT_EQ(stream.description(), "2 files, 4 tokens (2 tokenized)");
}

// ---------------------------------------------------------------------------------------------
// The token cache

TEST_F(DataTest, SecondLoadReadsTheCacheAndChangesInvalidateIt) {
  const std::string path = dir.file("a.txt");
  write_text(path, "Hello world.\n<|endoftext|>\nSecond document.");
  const int64_t eos = *gpt2().eos_id();
  const TokenStream first = load(path, &gpt2(), eos);
  EXPECT_EQ(first.description(), "a.txt: " + std::to_string(first.size()) + " tokens (tokenized)");
  const TokenStream second = load(path, &gpt2(), eos);
  EXPECT_EQ(second.description(), "a.txt: " + std::to_string(first.size()) + " tokens (cached)");
  EXPECT_EQ(ids_of(second), ids_of(first));

  // One complete cache file, no temp files left behind.
  const std::vector<std::string> entries = files::list_directory(dir.file("cache/tokens"));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].rfind("a.txt-", 0), 0u);

  // Another EOS, another tokenizer or other content: tokenized again.
  EXPECT_NE(load(path, &gpt2(), -1).description().find("(tokenized)"), std::string::npos);
  EXPECT_EQ(load(path, &gpt2(), -1).size(), first.size() - 2);
  EXPECT_NE(load(path, nullptr, eos).description().find("(tokenized)"), std::string::npos);
  write_text(path, "Changed text, longer than before.");
  const TokenStream changed = load(path, &gpt2(), eos);
  EXPECT_NE(changed.description().find("(tokenized)"), std::string::npos);
  std::vector<uint32_t> expected;
  for (int64_t id : gpt2().encode("Changed text, longer than before.")) expected.push_back(uint32_t(id));
  expected.push_back(uint32_t(eos));
  EXPECT_EQ(ids_of(changed), expected);
}

TEST_F(DataTest, CacheFolderComesFromTheEnvironmentWhenNotGiven) {
  write_text(dir.file("a.txt"), "abc");
  DataOptions opts = options({dir.file("a.txt")});
  opts.cache_dir.clear();
  ASSERT_EQ(::setenv("GQA_CACHE_DIR", dir.file("env-cache").c_str(), 1), 0);
  const ByteTokenizer bytes;
  const TokenStream stream = load_token_stream(opts, &bytes, kByteEos);
  ::unsetenv("GQA_CACHE_DIR");
  EXPECT_EQ(stream.size(), 4);
  EXPECT_EQ(files::list_directory(dir.file("env-cache/tokens")).size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// JSONL

TEST_F(DataTest, JsonlRecordsAreDocuments) {
  write_text(dir.file("lm.jsonl"), "{\"text\": \"ab\", \"id\": 1}\n\n{\"text\": \"\"}\n{\"text\": \"c\\nd\"}\n");
  EXPECT_EQ(ids_of(load(dir.file("lm.jsonl"))), (std::vector<uint32_t>{'a', 'b', kByteEos, 'c', '\n', 'd', kByteEos}));

  write_gz(dir.file("lm2.jsonl.gz"), "{\"body\": \"xy\"}\n");
  DataOptions opts = options({dir.file("lm2.jsonl.gz")});
  opts.text_field = "body";
  const ByteTokenizer bytes;
  EXPECT_EQ(ids_of(load_token_stream(opts, &bytes, kByteEos)), (std::vector<uint32_t>{'x', 'y', kByteEos}));
}

TEST_F(DataTest, BadJsonlLinesAreNamedByFileAndLine) {
  write_text(dir.file("bad.jsonl"), "{\"text\": \"ok\"}\n\n{\"text\": \"broken\"\n");
  std::string message = input_error([&] { load(dir.file("bad.jsonl")); });
  EXPECT_NE(message.find("bad.jsonl:3"), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;

  write_text(dir.file("missing.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n");
  message = input_error([&] { load(dir.file("missing.jsonl")); });
  EXPECT_NE(message.find("missing.jsonl:2: text: missing field"), std::string::npos) << message;

  write_text(dir.file("number.jsonl"), "{\"text\": 5}\n");
  message = input_error([&] { load(dir.file("number.jsonl")); });
  EXPECT_NE(message.find("number.jsonl:1: text: expected a string"), std::string::npos) << message;
  // Nothing half-written is left to be mistaken for a cache entry.
  EXPECT_TRUE(files::list_directory(dir.file("cache/tokens")).empty());

  // A record nested past the JSON depth limit (core/json_depth.h) is refused by file and line
  // before it is parsed; one nested 500 deep with its text is still a record.
  write_text(dir.file("deep.jsonl"),
             "{\"text\": \"ok\"}\n{\"x\": " + std::string(600, '[') + std::string(600, ']') + "}\n");
  message = input_error([&] { load(dir.file("deep.jsonl")); });
  EXPECT_NE(message.find("deep.jsonl:2: JSON nested deeper than 512"), std::string::npos) << message;
  // Found by fuzz_jsonl_records: a number beyond a double's range (nlohmann throws out_of_range,
  // not parse_error) ended the program instead of naming the line.
  write_text(dir.file("huge.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \"x\", \"n\": 1.1E73709551615}\n");
  message = input_error([&] { load(dir.file("huge.jsonl")); });
  EXPECT_NE(message.find("huge.jsonl:2: not valid JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("number overflow"), std::string::npos) << message;
  write_text(dir.file("deep-ok.jsonl"),
             "{\"text\": \"ok\", \"x\": " + std::string(500, '[') + std::string(500, ']') + "}\n");
  EXPECT_EQ(ids_of(load(dir.file("deep-ok.jsonl"))), (std::vector<uint32_t>{'o', 'k', kByteEos}));
}

TEST_F(DataTest, Seq2SeqPairsCarrySpecialTokensAndTruncateLikeHuggingFace) {
  write_text(dir.file("summ.jsonl"),
             "{\"document\": \"abcdef\", \"summary\": \"xy\"}\n{\"document\": \"g\", \"summary\": "
             "\"zzzzz\"}\n");
  const ByteTokenizer bytes;  // suffix </s> = 1
  const DataOptions opts = options({dir.file("summ.jsonl")});
  const auto check = [&](const std::vector<Seq2SeqExample>& examples) {
    ASSERT_EQ(examples.size(), 2u);
    EXPECT_EQ(examples[0].source, (std::vector<int32_t>{'a', 'b', 'c', 1}));  // cut to 4 with </s> kept
    EXPECT_EQ(examples[0].target, (std::vector<int32_t>{'x', 'y', 1}));
    EXPECT_EQ(examples[1].source, (std::vector<int32_t>{'g', 1}));
    EXPECT_EQ(examples[1].target, (std::vector<int32_t>{'z', 'z', 1}));
  };
  check(load_seq2seq(opts, bytes, 4, 3));
  check(load_seq2seq(opts, bytes, 4, 3));  // from the cache
  EXPECT_EQ(files::list_directory(dir.file("cache/tokens")).size(), 1u);
  EXPECT_EQ(load_seq2seq(opts, bytes, 0, 0)[0].source, (std::vector<int32_t>{'a', 'b', 'c', 'd', 'e', 'f', 1}));

  // GPT-2 adds no special tokens: the ids are the plain encodings.
  const auto gpt = load_seq2seq(opts, gpt2(), 0, 0);
  EXPECT_EQ(std::vector<int64_t>(gpt[1].target.begin(), gpt[1].target.end()), gpt2().encode("zzzzz"));

  DataOptions renamed = opts;
  renamed.target_field = "title";
  const std::string message = input_error([&] { load_seq2seq(renamed, bytes, 0, 0); });
  EXPECT_NE(message.find("summ.jsonl:1: title: missing field"), std::string::npos) << message;

  write_text(dir.file("plain.txt"), "text");
  EXPECT_NE(input_error([&] { load_seq2seq(options({dir.file("plain.txt")}), bytes, 0, 0); }).find("must be JSONL"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Token files

void write_hdf5(const std::string& path, const std::string& name, hid_t type, const void* values, hsize_t n) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t data = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(data, 0);
  ASSERT_GE(H5Dwrite(data, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), 0);
  H5Dclose(data);
  H5Sclose(space);
  H5Fclose(file);
}

TEST_F(DataTest, Hdf5IntegerDatasetsOfAnyWidthBecomeUint32) {
  const std::vector<int16_t> small = {5, 0, 300, 7};
  write_hdf5(dir.file("t16.h5"), "tokens", H5T_NATIVE_INT16, small.data(), small.size());
  const TokenStream first = load(dir.file("t16.h5"));
  EXPECT_EQ(ids_of(first), (std::vector<uint32_t>{5, 0, 300, 7}));
  EXPECT_EQ(first.description(), "t16.h5: 4 tokens (converted)");
  EXPECT_EQ(load(dir.file("t16.h5")).description(), "t16.h5: 4 tokens (cached)");

  const std::vector<uint64_t> wide = {50256, 1, 2};
  write_hdf5(dir.file("t64.hdf5"), "ids", H5T_NATIVE_UINT64, wide.data(), wide.size());
  DataOptions opts = options({dir.file("t64.hdf5")});
  opts.hdf5_dataset = "ids";
  EXPECT_EQ(ids_of(load_token_stream(opts, nullptr, -1)), (std::vector<uint32_t>{50256, 1, 2}));

  // Wrong dataset name, negative ids, float data.
  EXPECT_NE(input_error([&] { load(dir.file("t64.hdf5")); }).find("tokens: no such dataset"), std::string::npos);
  const std::vector<int32_t> negative = {1, -3};
  write_hdf5(dir.file("neg.h5"), "tokens", H5T_NATIVE_INT32, negative.data(), negative.size());
  EXPECT_NE(input_error([&] { load(dir.file("neg.h5")); }).find("neg.h5: token 1: id -3"), std::string::npos);
  const std::vector<float> floats = {1.5f};
  write_hdf5(dir.file("f.h5"), "tokens", H5T_NATIVE_FLOAT, floats.data(), floats.size());
  EXPECT_NE(input_error([&] { load(dir.file("f.h5")); }).find("expected integer token ids"), std::string::npos);
  write_text(dir.file("not.h5"), "text");
  EXPECT_NE(input_error([&] { load(dir.file("not.h5")); }).find("not an HDF5 file"), std::string::npos);
}

TEST_F(DataTest, BinFilesAreMappedAsLittleEndianUint16OrUint32) {
  const std::vector<uint16_t> u16 = {1, 65535, 50256, 0};
  write_raw(dir.file("t16.bin"), u16);
  const TokenStream stream16 = load(dir.file("t16.bin"));
  EXPECT_EQ(ids_of(stream16), (std::vector<uint32_t>{1, 65535, 50256, 0}));
  EXPECT_EQ(stream16[1], 65535u);
  EXPECT_EQ(stream16.description(), "t16.bin: 4 tokens (mapped)");

  const std::vector<uint32_t> u32 = {100000, 3, 7};
  write_raw(dir.file("t32.bin"), u32);
  write_raw(dir.file("pairs.bin"), std::vector<uint16_t>{1, 2, 50256, 0});
  DataOptions opts = options({dir.file("t32.bin"), dir.file("pairs.bin")});
  opts.format = "bin";
  opts.bin_dtype = "uint32";
  // pairs.bin read as uint32: two ids from its 8 bytes, low half first.
  const TokenStream both = load_token_stream(opts, nullptr, -1);
  EXPECT_EQ(ids_of(both), (std::vector<uint32_t>{100000, 3, 7, 1 | 2 << 16, 50256}));
  EXPECT_EQ(both.description(), "2 files, 5 tokens (2 mapped)");
  std::vector<int32_t> across(3);
  both.read(2, 3, across.data());  // a read across two files
  EXPECT_EQ(across, (std::vector<int32_t>{7, 1 | 2 << 16, 50256}));
  // t16.bin as uint32: 65535 << 16 | 1 does not fit the int32 ids the trainer reads.
  opts.paths = {dir.file("t16.bin")};
  EXPECT_NE(input_error([&] { load_token_stream(opts, nullptr, -1); }).find("t16.bin: token 0: id 4294901761"),
            std::string::npos);
  EXPECT_THROW(both.read(3, 3, across.data()), std::out_of_range);

  write_raw(dir.file("odd.bin"), std::vector<uint8_t>{1, 2, 3});
  const std::string message = input_error([&] { load(dir.file("odd.bin")); });
  EXPECT_NE(message.find("odd.bin: size 3 bytes is not a multiple of 2"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------------
// Validation

TEST_F(DataTest, IdsBeyondTheVocabularyNameFileAndPosition) {
  write_raw(dir.file("t.bin"), std::vector<uint16_t>{1, 2, 3, 60000, 4});
  DataOptions opts = options({dir.file("t.bin")});
  opts.vocab_size = 50257;
  const std::string message = input_error([&] { load_token_stream(opts, nullptr, -1); });
  EXPECT_NE(message.find("t.bin: token 3: id 60000 is not below the vocabulary size 50257"), std::string::npos)
      << message;
  opts.vocab_size = 60001;
  EXPECT_EQ(load_token_stream(opts, nullptr, -1).size(), 5);

  // Checked on cached loads too.
  write_text(dir.file("a.txt"), "az");
  DataOptions text = options({dir.file("a.txt")});
  const ByteTokenizer bytes;
  EXPECT_EQ(load_token_stream(text, &bytes, kByteEos).size(), 3);
  text.vocab_size = 'z';
  EXPECT_NE(input_error([&] { load_token_stream(text, &bytes, kByteEos); }).find("a.txt: token 1: id 122"),
            std::string::npos);
}

TEST_F(DataTest, EmptyAndMissingInputsAreErrors) {
  write_text(dir.file("empty.txt"), "");
  write_text(dir.file("blank.txt"), "\n\n<|endoftext|>\n\n");
  write_text(dir.file("empty.bin"), "");
  for (const char* name : {"empty.txt", "blank.txt", "empty.bin"}) {
    const std::string message = input_error([&] { load(dir.file(name)); });
    EXPECT_NE(message.find(std::string(name) + ": no tokens"), std::string::npos) << message;
  }
  std::string message = input_error([&] { load(dir.file("nope.txt")); });
  EXPECT_NE(message.find("nope.txt: no such file or folder"), std::string::npos) << message;
  message = input_error([&] { load_token_stream(options({dir.file("empty.txt")}), nullptr, -1); });
  EXPECT_NE(message.find("needs a tokenizer"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------------
// BatchOrder

std::vector<int64_t> take(BatchOrder* order, int batches) {
  std::vector<int64_t> all;
  for (int b = 0; b < batches; ++b) {
    const auto batch = order->next();
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

TEST(BatchOrderTest, EpochsArePermutationsFixedBySeed) {
  BatchOrder a(10, 4, 1234), b(10, 4, 1234), other(10, 4, 1235);
  const std::vector<int64_t> seq = take(&a, 5);  // 20 indices: two epochs
  EXPECT_EQ(seq, take(&b, 5));
  EXPECT_NE(seq, take(&other, 5));
  EXPECT_EQ(a.epoch(), 2);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const std::set<int64_t> seen(seq.begin() + 10 * epoch, seq.begin() + 10 * (epoch + 1));
    EXPECT_EQ(seen.size(), 10u);
    EXPECT_EQ(*seen.begin(), 0);
    EXPECT_EQ(*seen.rbegin(), 9);
  }
  EXPECT_NE(std::vector<int64_t>(seq.begin(), seq.begin() + 10), std::vector<int64_t>(seq.begin() + 10, seq.end()));
  // The same on every platform: mt19937_64 and our own Fisher-Yates. Pinned values, also produced
  // by an independent Python reimplementation of both.
  EXPECT_EQ(std::vector<int64_t>(seq.begin(), seq.begin() + 10), (std::vector<int64_t>{0, 3, 4, 7, 9, 8, 5, 6, 1, 2}));

  BatchOrder in_order(5, 3, 7, /*shuffle=*/false);
  EXPECT_EQ(take(&in_order, 3), (std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1, 2, 3}));
  EXPECT_EQ(in_order.epoch(), 1);
}

TEST(BatchOrderTest, ResumingFromStateContinuesTheSameSequence) {
  BatchOrder uninterrupted(13, 5, 99);
  const std::vector<int64_t> expected = take(&uninterrupted, 9);

  BatchOrder first_run(13, 5, 99);
  std::vector<int64_t> resumed = take(&first_run, 4);  // stops mid-epoch (20 of 26 in epoch 1)
  const std::string saved = first_run.state().dump();
  BatchOrder second_run(13, 5, 99);
  second_run.restore(nlohmann::json::parse(saved));
  EXPECT_EQ(second_run.epoch(), 1);
  const std::vector<int64_t> rest = take(&second_run, 5);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  EXPECT_EQ(resumed, expected);
  EXPECT_EQ(second_run.state(), uninterrupted.state());
}

TEST(BatchOrderTest, StatesOfAnotherShapeAreRejected) {
  const nlohmann::json state = BatchOrder(13, 5, 99).state();
  BatchOrder other_n(14, 5, 99), other_batch(13, 4, 99), other_seed(13, 5, 98);
  EXPECT_NE(input_error([&] { other_n.restore(state); }).find("n_examples"), std::string::npos);
  EXPECT_NE(input_error([&] { other_batch.restore(state); }).find("batch_size"), std::string::npos);
  EXPECT_NE(input_error([&] { other_seed.restore(state); }).find("seed"), std::string::npos);
  nlohmann::json bad = state;
  bad["position"] = 13;
  BatchOrder same(13, 5, 99);
  EXPECT_NE(input_error([&] { same.restore(bad); }).find("out of range"), std::string::npos);
  EXPECT_NE(input_error([&] { same.restore(nlohmann::json::object()); }).find("epoch"), std::string::npos);
  EXPECT_NE(input_error([] { BatchOrder(0, 1, 0); }).find("no training examples"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// A real corpus against transformers

TEST_F(DataTest, ValidCorpusIdsEqualTransformersGpt2) {
  const std::string corpus = GQA_CORPUS_DIR "/valid.txt.gz";
  ASSERT_TRUE(files::is_regular_file(corpus)) << corpus << ": run scripts/make-corpus.sh (the ctest fixture `corpus`)";
  const std::string oracle_ids = dir.file("oracle.u32");
  const std::string command = std::string("'") + GQA_PYTHON +
                              "' '" GQA_SOURCE_DIR "/tests/uptrain/tokenize_oracle.py' '" +
                              GQA_SOURCE_DIR "/examples/assets/gpt2' '" + corpus + "' '" + oracle_ids + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(oracle_ids, std::ios::binary);
  std::vector<uint32_t> expected;
  for (uint32_t id; in.read(reinterpret_cast<char*>(&id), sizeof id);) expected.push_back(id);

  DataOptions opts = options({corpus});
  opts.vocab_size = gpt2().vocab_size();
  const TokenStream stream = load_token_stream(opts, &gpt2(), *gpt2().eos_id());
  ASSERT_GT(expected.size(), 100000u);  // a whole book
  const std::vector<uint32_t> ids = ids_of(stream);
  ASSERT_EQ(ids.size(), expected.size());
  const auto mismatch = std::mismatch(ids.begin(), ids.end(), expected.begin());
  EXPECT_TRUE(mismatch.first == ids.end()) << "first difference at token " << (mismatch.first - ids.begin());
  EXPECT_EQ(ids.back(), uint32_t(*gpt2().eos_id()));
}

}  // namespace
}  // namespace gqa
