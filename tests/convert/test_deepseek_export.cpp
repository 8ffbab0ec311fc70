// `gqa export --format deepseek_v3` (issue #21): a latent Llama folder written as deepseek_v3
// loads in transformers (no remote code) and gives gqa's logits for the latent folder; with the
// anchor the latent RMSNorm is linear and the two agree to float precision, while the plain export
// (the norm weight at the latent's RMS) does not, which is what the anchor buys. Folders that
// deepseek_v3 cannot state are refused naming the field.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "convert/calibration.h"
#include "convert/converter.h"
#include "convert/deepseek_v3.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model/model.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using test::logits_for;
using test::max_abs_diff;
using test::transformers_logits;

// A latent folder of an oracle Llama in the deepseek layout (one slot per rotary pair).
std::string latent_llama(const test::TempDir& tmp, const std::string& name, int64_t rank) {
  const ModelConfig src = load_config(test::oracle_case(name));
  ConvertOptions o;
  o.latent = LatentTarget{rank, src.rotary_dims()};
  convert_checkpoint(test::oracle_case(name), tmp.file("mla"), o);
  return tmp.file("mla");
}

TEST(DeepseekExport, AnchoredFolderGivesGqaLogitsInTransformers) {
  for (const std::string name : {"llama_mha", "llama_mqa_sharded", "llama_bf16"}) {
    test::TempDir tmp("gqa-ds");
    const std::string mla = latent_llama(tmp, name, 24);
    const DeepseekExportSummary s = export_deepseek_v3(mla, tmp.file("ds"), {});
    EXPECT_EQ(s.kv_lora_rank, 25);  // the anchor's one dim
    const at::Tensor ours = logits_for(mla, name);
    const double d = max_abs_diff(transformers_logits(tmp.file("ds"), name, tmp), ours);
    std::cout << "[deepseek_v3] " << name << " anchor: transformers vs gqa max_abs_diff=" << d << "\n";
    EXPECT_LE(d, name == "llama_bf16" ? 0.1 : 1e-4) << name;
  }
}

TEST(DeepseekExport, PlainNormIsAnApproximationTheAnchorRemoves) {
  test::TempDir tmp("gqa-ds");
  const std::string name = "llama_mha";
  const std::string mla = latent_llama(tmp, name, 24);
  auto model = load_model(mla);
  const CalibrationStore calib =
      collect_calibration(*model, test::random_sequences(8, 32, model->config().vocab_size, 5), 4);
  DeepseekExportOptions plain;
  plain.norm = LatentNorm::Plain;
  plain.calibration = &calib;
  EXPECT_EQ(export_deepseek_v3(mla, tmp.file("plain"), plain).kv_lora_rank, 24);
  export_deepseek_v3(mla, tmp.file("anchor"), {});
  const at::Tensor ours = logits_for(mla, name);
  const double d_plain = max_abs_diff(transformers_logits(tmp.file("plain"), name, tmp), ours);
  const double d_anchor = max_abs_diff(transformers_logits(tmp.file("anchor"), name, tmp), ours);
  std::cout << "[deepseek_v3] plain norm max_abs_diff=" << d_plain << ", anchor " << d_anchor << "\n";
  EXPECT_GT(d_plain, 100 * d_anchor);
}

TEST(DeepseekExport, FoldersDeepseekCannotStateAreRefused) {
  test::TempDir tmp("gqa-ds");
  const std::string out = tmp.file("out");
  auto refused = [&](const std::string& in, DeepseekExportOptions o, const std::string& field) {
    try {
      export_deepseek_v3(in, out, o);
      ADD_FAILURE() << "accepted: " << field;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_FALSE(files::exists(out)) << field;
  };
  refused(test::oracle_case("llama_mha"), {}, "gqa_latent");  // not latent
  ConvertOptions gpt2;
  gpt2.latent = LatentTarget{16, std::nullopt};
  convert_checkpoint(test::oracle_case("gpt2_h4"), tmp.file("gpt2"), gpt2);
  refused(tmp.file("gpt2"), {}, "model_type");
  ConvertOptions wide;
  wide.latent = LatentTarget{16, 2 * load_config(test::oracle_case("llama_mha")).rotary_dims()};
  convert_checkpoint(test::oracle_case("llama_mha"), tmp.file("wide"), wide);
  refused(tmp.file("wide"), {}, "deepseek layout");
  DeepseekExportOptions plain;
  plain.norm = LatentNorm::Plain;
  refused(latent_llama(tmp, "llama_mha", 16), plain, "--calib");
  // This Llama has q/k/v biases: DeepSeek's query projection has none.
  ConvertOptions biased;
  biased.latent = LatentTarget{16, load_config(test::oracle_case("llama_gqa_h6kv2")).rotary_dims()};
  convert_checkpoint(test::oracle_case("llama_gqa_h6kv2"), tmp.file("biased"), biased);
  refused(tmp.file("biased"), {}, "q_proj.bias");
}

}  // namespace
}  // namespace gqa
