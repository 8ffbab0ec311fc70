// Issue #20: a T5 folder as transformers 5 saves it (tokenizer.json with a Unigram model, no
// spiece.model), built by tests/oracle/t5_json_only_folder.py, through the gqa binary: generate
// prints what transformers generates (same ids in, same text out), eval scores summaries, convert
// calibrates on tokenized text, and the converted folder keeps the tokenizer files (still no
// spiece.model) and works the same way.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/files.h"
#include "tests/cli/run_gqa.h"
#include "tests/test_util.h"

namespace {

using json = nlohmann::json;
using gqa::test::Result;
using gqa::test::run_gqa;
using gqa::test::run_program;
using gqa::test::Succeeded;

// The folder and transformers' greedy continuations ({"texts", "generated"}).
json make_folder(const std::string& dir) {
  gqa::test::RunOptions slow;
  slow.timeout_seconds = 240;
  const Result r = run_program({GQA_PYTHON, std::string(GQA_SOURCE_DIR) + "/tests/oracle/t5_json_only_folder.py", dir,
                                "--corpus", GQA_CORPUS_DIR},
                               slow);
  if (!Succeeded(r)) {
    ADD_FAILURE() << "t5_json_only_folder.py failed: " << r.describe();
    return json();
  }
  return json::parse(r.out);
}

void expect_t5_tokenizer_files(const std::string& dir) {
  EXPECT_TRUE(gqa::files::exists(dir + "/tokenizer.json")) << dir;
  EXPECT_TRUE(gqa::files::exists(dir + "/tokenizer_config.json")) << dir;
  EXPECT_FALSE(gqa::files::exists(dir + "/spiece.model")) << dir;
  EXPECT_FALSE(gqa::files::exists(dir + "/tokenizer.model")) << dir;
}

TEST(T5TokenizerJson, GenerateEvalAndConvertWithoutSpieceModel) {
  gqa::test::TempDir tmp("gqa-t5-json");
  const std::string src = tmp.file("t5"), out = tmp.file("t5-gqa");
  const json hf = make_folder(src);
  ASSERT_TRUE(hf.is_object());
  expect_t5_tokenizer_files(src);

  const auto& texts = hf.at("texts");
  for (size_t i = 0; i < texts.size(); ++i) {
    const Result g = run_gqa({"generate", src, "--prompt", texts[i].get<std::string>(), "-n", "10"});
    ASSERT_TRUE(Succeeded(g)) << g.describe();
    EXPECT_EQ(g.out, hf.at("generated")[i].get<std::string>() + "\n") << "prompt " << i;
  }

  gqa::test::write_text(tmp.file("pairs.jsonl"),
                        "{\"document\": \"A game of ancient warfare with armies.\", \"summary\": \"strategy game\"}\n"
                        "{\"document\": \"Library for reading ZIP files.\", \"summary\": \"ZIP library\"}\n");
  std::string calib;
  for (int i = 0; i < 40; ++i) calib += texts[size_t(i) % texts.size()].get<std::string>() + "\n";
  gqa::test::write_text(tmp.file("calib.txt"), calib);
  const std::vector<std::string> eval_args = {"--summaries", tmp.file("pairs.jsonl"), "--summary-tokens", "6",
                                              "--json"};
  const auto evaluate = [&](const std::string& dir) {
    std::vector<std::string> args = {"eval", dir};
    args.insert(args.end(), eval_args.begin(), eval_args.end());
    const Result e = run_gqa(args);
    ASSERT_TRUE(Succeeded(e)) << e.describe();
    const json j = json::parse(e.out);
    EXPECT_EQ(j.at("metric"), "rouge") << e.out;
    EXPECT_EQ(j.at("examples"), 2) << e.out;
  };
  evaluate(src);

  const Result c = run_gqa({"convert", src, out, "--kv-heads", "2", "--strategy", "similarity", "--calib",
                            tmp.file("calib.txt"), "--calib-tokens", "256", "--calib-seq-len", "32"});
  ASSERT_TRUE(Succeeded(c)) << c.describe();
  EXPECT_NE(c.out.find("calibration: 256 tokens"), std::string::npos) << c.out;
  expect_t5_tokenizer_files(out);
  EXPECT_EQ(gqa::test::read_text(out + "/tokenizer.json"), gqa::test::read_text(src + "/tokenizer.json"));
  evaluate(out);
  const Result g = run_gqa({"generate", out, "--prompt", texts[0].get<std::string>(), "-n", "4"});
  EXPECT_TRUE(Succeeded(g)) << g.describe();
}

}  // namespace
