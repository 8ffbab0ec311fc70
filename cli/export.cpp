// gqa export IN_DIR OUT_DIR --format deepseek_v3: a latent Llama folder (convert --target mla, uptrained
// or not) as a Hugging Face deepseek_v3 folder that transformers loads without remote code.
#include <iostream>

#include "cli/options.h"
#include "convert/calibration.h"
#include "convert/deepseek_v3.h"
#include "core/error.h"

namespace gqa::cli {

int export_folder(const Args& args) {
  po::options_description opts(
      "gqa export IN_DIR OUT_DIR [--format deepseek_v3] [--latent-norm anchor|plain] [options]");
  std::string format, norm;
  int64_t calib_tokens = 0, calib_len = 0;
  DeepseekExportOptions o;
  opts.add_options()("help,h", "show options")("in", po::value<std::string>()->required(),
                                               "latent Llama folder (gqa convert --target mla, uptrained or not)")(
      "out", po::value<std::string>()->required(), "output folder (written atomically)")(
      "format", po::value<std::string>(&format)->default_value("deepseek_v3"), "deepseek_v3")(
      "latent-norm", po::value<std::string>(&norm)->default_value("anchor"),
      "anchor: one more latent dim makes DeepSeek's latent RMSNorm linear (the same function, to 1e-8); plain: "
      "the latent as it is, the norm weight its RMS on --calib text (approximate)")(
      "calib", po::value<std::string>(), "plain: calibration text for the latent's RMS")(
      "calib-tokens", po::value<int64_t>(&calib_tokens)->default_value(16384), "calibration tokens")(
      "calib-seq-len", po::value<int64_t>(&calib_len)->default_value(256), "calibration sequence length")(
      "force", po::bool_switch(&o.force), "replace OUT_DIR if it exists");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"in", "out"})) return 0;
  if (format != "deepseek_v3") throw InputError("--format", "", "expected deepseek_v3");
  if (norm != "anchor" && norm != "plain") throw InputError("--latent-norm", "", "expected anchor or plain");
  o.norm = norm == "plain" ? LatentNorm::Plain : LatentNorm::Anchor;
  if (o.norm == LatentNorm::Plain && !vm.count("calib"))
    throw InputError("--calib", "", "--latent-norm plain needs calibration text (the latent's RMS)");
  if (calib_tokens <= 0 || calib_len < 2) throw InputError("--calib-tokens/--calib-seq-len", "", "must be positive");
  const std::string in_dir = vm["in"].as<std::string>(), out_dir = vm["out"].as<std::string>();
  CalibrationStore calibration;
  if (o.norm == LatentNorm::Plain) {
    const ModelConfig cfg = load_config(in_dir);
    if (cfg.max_positions > 0) calib_len = std::min(calib_len, cfg.max_positions);
    auto model = load_model(in_dir);
    collect_calibration(*model, calibration_sequences(in_dir, vm["calib"].as<std::string>(), calib_tokens, calib_len),
                        calibration);
    o.calibration = &calibration;
  }
  const DeepseekExportSummary s = export_deepseek_v3(in_dir, out_dir, o, &std::cout);
  std::cout << "wrote " << out_dir << ": " << s.layers << " layers, kv_lora_rank " << s.kv_lora_rank
            << ", qk_rope_head_dim " << s.rope_dims << "; KV cache per token (fp32) " << s.kv_bytes_per_token
            << " bytes\n";
  return 0;
}

}  // namespace gqa::cli
