// Calibration statistics: the Gram matrix the runtime accumulates equals X^T X of the block input
// computed by hand, and activation-based similarity finds tied heads end to end.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <random>

#include "convert/calibration.h"
#include "convert/converter.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model/decoder_lm.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using test::random_sequences;

std::string oracle(const std::string& name) { return test::oracle_case(name); }

TEST(Calibration, GramIsXTransposeXOfTheFirstBlockInput) {
  auto model = load_model(oracle("gpt2_h4"));
  const auto seqs = random_sequences(5, 12, model->config().vocab_size, 1);
  const CalibrationStore cal = collect_calibration(*model, seqs, 2);
  ASSERT_EQ(cal.size(), size_t(model->config().n_layers));
  // Layer 0's input by hand: ln_1(wte[ids] + wpe[positions]).
  const auto& lm = dynamic_cast<const DecoderLM&>(*model);
  at::Tensor ids = at::empty({5, 12}, at::kLong);
  for (int b = 0; b < 5; ++b)
    for (int t = 0; t < 12; ++t) ids[b][t] = seqs[size_t(b)][size_t(t)];
  at::Tensor x =
      lm.layers[0].attn_norm(at::embedding(lm.token_embedding, ids) + lm.position_embedding.narrow(0, 0, 12));
  at::Tensor X = x.reshape({-1, x.size(-1)}).to(at::kDouble);
  at::Tensor want = X.t().matmul(X).to(at::kFloat).contiguous();
  const BlockCalibration& c = cal.at({AttentionModule::DecoderSelf, 0});
  EXPECT_EQ(c.tokens, 60);
  Matrix w = Eigen::Map<const Matrix>(want.data_ptr<float>(), want.size(0), want.size(1));
  EXPECT_LE((c.input_gram - w).cwiseAbs().maxCoeff(), 1e-3f * w.cwiseAbs().maxCoeff());
  at::Tensor sum = X.sum(0).to(at::kFloat).contiguous();
  EXPECT_LE((c.input_sum - Eigen::Map<const Vector>(sum.data_ptr<float>(), sum.size(0))).cwiseAbs().maxCoeff(), 1e-3f);
}

TEST(Calibration, T5CoversEncoderDecoderAndCross) {
  auto model = load_model(oracle("t5_v10"));
  const CalibrationStore cal = collect_calibration(*model, random_sequences(3, 9, model->config().vocab_size, 2), 2);
  const auto& c = model->config();
  EXPECT_EQ(cal.size(), size_t(c.n_encoder_layers + 2 * c.n_layers));
  EXPECT_EQ(cal.at({AttentionModule::DecoderCross, 1}).tokens, 27);
}

TEST(Calibration, ActivationSimilarityFindsTiedHeadsExactly) {
  test::TempDir tmp("gqa-calib");
  auto model = load_model(oracle("llama_tied_interleaved"));
  const CalibrationStore cal = collect_calibration(*model, random_sequences(4, 16, model->config().vocab_size, 3));
  ConvertOptions o;
  o.strategy = "similarity";
  o.kv_heads = 2;
  o.calibration = &cal;
  const ConvertSummary s = convert_checkpoint(oracle("llama_tied_interleaved"), tmp.file("out"), o);
  ASSERT_FALSE(s.block_reports.empty());
  EXPECT_NE(s.block_reports[0].find("activations"), std::string::npos) << s.block_reports[0];
  EXPECT_NE(s.block_reports[0].find("within-group similarity 1.0000"), std::string::npos) << s.block_reports[0];
  SafetensorsFile ref(oracle("llama_tied_interleaved") + "/reference.safetensors");
  at::Tensor ids = test::reference(ref, "input_ids"), mask = test::reference(ref, "attention_mask");
  auto converted = load_model(tmp.file("out"));
  const double d =
      (converted->forward(ids, mask) - model->forward(ids, mask)).mul(mask.unsqueeze(-1)).abs().max().item<double>();
  EXPECT_LE(d, 1e-5);
}

// Streaming (one block at a time, statistics spilled to disk as each block finishes) gives the
// statistics of today's whole-model pass, in float32, on every family.
class StreamedCalibration : public testing::TestWithParam<const char*> {};

TEST_P(StreamedCalibration, EqualsTheWholeModelPass) {
  const std::string dir = oracle(GetParam());
  auto whole = load_model(dir);
  const auto seqs = random_sequences(5, 12, whole->config().vocab_size, 4);
  const CalibrationStore want = collect_calibration(*whole, seqs, 2);
  test::TempDir tmp("gqa-calib-stream");
  CalibrationStore got(tmp.path);
  CalibrationTiming timing;
  auto streamed = load_model(dir, Placement{}, Residency::OneBlock);
  collect_calibration(*streamed, seqs, got, 2, &timing);
  EXPECT_EQ(timing.tokens, 60);
  EXPECT_GE(timing.total_seconds, timing.statistics_seconds);
  ASSERT_TRUE(got.spilled());
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(files::list_directory(tmp.path).size(), want.size());  // one file per block
  const auto& c = whole->config();
  for (AttentionModule m : c.modules())
    for (int64_t l = 0; l < int64_t(c.layouts.at(m).size()); ++l) {
      const BlockCalibration& a = want.at({m, l});
      const BlockCalibration b = got.at({m, l});  // a copy: the next lookup reloads
      EXPECT_EQ(a.tokens, b.tokens) << module_name(m) << " " << l;
      const float scale = a.input_gram.cwiseAbs().maxCoeff();
      EXPECT_LE((a.input_gram - b.input_gram).cwiseAbs().maxCoeff(), 1e-6f * scale) << module_name(m) << " " << l;
      EXPECT_LE((a.input_sum - b.input_sum).cwiseAbs().maxCoeff(), 1e-6f * a.input_sum.cwiseAbs().maxCoeff())
          << module_name(m) << " " << l;
    }
}

INSTANTIATE_TEST_SUITE_P(Families, StreamedCalibration,
                         testing::Values("gpt2_h4", "gpt_neo_h4", "llama_mha", "llama_gqa_h6kv2", "t5_v10", "t5_v11"));

// A spilled store gives back exactly what went in, and converting with it writes the same
// folder as converting with the in-memory store.
TEST(CalibrationStore, SpilledRoundTripAndSameConversion) {
  auto model = load_model(oracle("llama_mha"));
  const CalibrationStore memory = collect_calibration(*model, random_sequences(4, 16, model->config().vocab_size, 5));
  test::TempDir tmp("gqa-calib-store");
  ::mkdir(tmp.file("spill").c_str(), 0755);
  CalibrationStore spilled(tmp.file("spill"));
  const auto& c = model->config();
  for (int64_t l = 0; l < c.n_layers; ++l)
    spilled.put({AttentionModule::DecoderSelf, l}, memory.at({AttentionModule::DecoderSelf, l}));
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const BlockCalibration& a = memory.at({AttentionModule::DecoderSelf, l});
    const BlockCalibration& b = spilled.at({AttentionModule::DecoderSelf, l});
    EXPECT_EQ(a.input_gram, b.input_gram);
    EXPECT_EQ(a.input_sum, b.input_sum);
    EXPECT_EQ(a.tokens, b.tokens);
  }
  EXPECT_EQ(spilled.find({AttentionModule::DecoderSelf, c.n_layers}), nullptr);
  ConvertOptions o;
  o.strategy = "svd";
  o.kv_heads = 2;
  o.calibration = &memory;
  convert_checkpoint(oracle("llama_mha"), tmp.file("a"), o);
  o.calibration = &spilled;
  convert_checkpoint(oracle("llama_mha"), tmp.file("b"), o);
  SafetensorsFile a(tmp.file("a/model.safetensors")), b(tmp.file("b/model.safetensors"));
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) {
    ASSERT_EQ(a.tensor(n).nbytes, b.tensor(n).nbytes);
    EXPECT_EQ(std::memcmp(a.tensor(n).data, b.tensor(n).data, a.tensor(n).nbytes), 0) << n;
  }
}

TEST(Calibration, ShortOrMissingTextIsAnInputError) {
  test::TempDir tmp("gqa-calib");
  test::write_text(tmp.file("short.txt"), "a few words");
  test::write_text(tmp.file("blank.txt"), " \n\n ");
  // The demo's tokenizer files are vocab.json + merges.txt; any GPT-2 folder with them will do.
  const std::string model_dir = tmp.file("model");
  ::mkdir(model_dir.c_str(), 0755);
  for (const char* f : {"vocab.json", "merges.txt"})
    files::copy_file(std::string(GQA_SOURCE_DIR) + "/examples/assets/gpt2/" + f, model_dir + "/" + f);
  EXPECT_THROW(calibration_sequences(model_dir, tmp.file("missing.txt"), 100, 16), InputError);
  EXPECT_THROW(calibration_sequences(model_dir, tmp.file("blank.txt"), 100, 16), InputError);
  EXPECT_THROW(calibration_sequences(model_dir, tmp.file("short.txt"), 100, 16), InputError);
  EXPECT_EQ(calibration_sequences(model_dir, tmp.file("short.txt"), 100, 2).size(), 1u);
}

}  // namespace
}  // namespace gqa
