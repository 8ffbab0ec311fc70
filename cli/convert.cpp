// gqa convert IN_DIR OUT_DIR: MHA -> GQA/MQA with a pooling or regrouping strategy, or (--target
// mla) -> multi-head latent attention.
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/options.h"
#include "convert/calibration.h"
#include "convert/converter.h"
#include "convert/grouping.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model/memory_plan.h"
#include "core/tokenizers/tokenizer.h"
#include "core/values.h"
#include "eval/perplexity.h"

namespace gqa::cli {

int convert(const Args& args) {
  po::options_description opts(
      "gqa convert IN_DIR OUT_DIR --strategy S (--kv-heads N | --mqa | --group-map MAP) [options]\n"
      "gqa convert IN_DIR OUT_DIR --target mla --kv-rank R [--rope-dims D] [options]");
  ConvertOptions o;
  std::string exported = "grouped", target = "gqa";
  int64_t calib_tokens = 0, calib_len = 0, eval_tokens = 0;
  bool report = false;
  std::string dtype_text;
  opts.add_options()("help,h", "show options")("in", po::value<std::string>()->required(),
                                               "source Hugging Face folder (MHA, or GQA to group further)")(
      "out", po::value<std::string>()->required(), "output folder (written atomically)")(
      "target", po::value<std::string>(&target)->default_value("gqa"),
      "gqa: grouped KV heads (--strategy); mla: latent attention, one shared latent (+ rotary key) per token")(
      "kv-rank", po::value<int64_t>(), "mla: latent dims per token R")(
      "rope-dims", po::value<int64_t>(),
      "mla: dims of the one shared rotary key per token (even; default one head's rotary dims, the deepseek_v3 "
      "layout; 0 without RoPE)")("strategy,s", po::value<std::string>(&o.strategy)->default_value("mean"),
                                 "mean | first | random | weighted | random-weighted | similarity | svd")(
      "kv-heads,k", po::value<int>(), "KV heads per block (equal contiguous groups)")("mqa", po::bool_switch(&o.mqa),
                                                                                      "one KV head per block")(
      "group-map", po::value<std::string>(), "KV head of each query head, e.g. 0,0,0,1,1,1,2,2 (uneven groups)")(
      "kv-head-dim", po::value<int>(), "\"KQV\": smaller query/key and value vectors for every head (projection)")(
      "qk-head-dim", po::value<int>(), "smaller query/key vectors only (not with rotary embeddings)")(
      "v-head-dim", po::value<int>(), "smaller value vectors only")(
      "match-params", po::bool_switch(&o.match_params), "widen the FFNs so the parameter count stays equal")(
      "modules", po::value<std::string>(),
      "T5: decoder-self,decoder-cross,encoder-self (default decoder-self,decoder-cross); the "
      "underscore names gqa prints (decoder_self, ...) are accepted too")(
      "layers", po::value<std::string>(), "convert only these layers, e.g. 0-5,8 (others keep their attention)")(
      "seed", po::value<uint64_t>(&o.seed)->default_value(0), "seed for random choices")(
      "export", po::value<std::string>(&exported)->default_value("grouped"),
      "grouped: KV heads as converted; expanded: MHA-shaped weights (KV heads repeated) for vanilla transformers")(
      "force", po::bool_switch(&o.force), "replace OUT_DIR if it exists")(
      "calib", po::value<std::string>(),
      "calibration text: activation similarity (similarity) and output subspaces (svd)")(
      "calib-tokens", po::value<int64_t>(&calib_tokens)->default_value(16384), "calibration tokens")(
      "calib-seq-len", po::value<int64_t>(&calib_len)->default_value(256), "calibration sequence length")(
      "dtype", po::value<std::string>(&dtype_text)->default_value("auto"),
      "forward of --calib and --report: auto (the checkpoint's own) | f32 | bf16 | f16; the output keeps the stored "
      "dtype")("report", po::bool_switch(&report),
               "print held-out perplexity before and after conversion (needs --eval)")("eval", po::value<std::string>(),
                                                                                       "held-out text for --report")(
      "eval-tokens", po::value<int64_t>(&eval_tokens)->default_value(16384), "held-out tokens scored for --report");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"in", "out"})) return 0;
  if (exported != "grouped" && exported != "expanded") throw InputError("--export", "", "expected grouped or expanded");
  if (target != "gqa" && target != "mla") throw InputError("--target", "", "expected gqa or mla");
  if (target == "mla") {
    if (!vm.count("kv-rank")) throw InputError("--kv-rank", "", "--target mla needs the latent rank");
    o.latent = LatentTarget{vm["kv-rank"].as<int64_t>(), std::nullopt};
    if (vm.count("rope-dims")) o.latent->rope_dims = vm["rope-dims"].as<int64_t>();
  } else if (vm.count("kv-rank") || vm.count("rope-dims")) {
    throw InputError(vm.count("kv-rank") ? "--kv-rank" : "--rope-dims", "", "only with --target mla");
  }
  o.export_expanded = exported == "expanded";
  parse_runtime_dtype_or_auto(dtype_text);  // a bad value is refused even when no forward needs it
  const std::string in_dir = vm["in"].as<std::string>(), out_dir = vm["out"].as<std::string>();
  const ModelConfig cfg = load_config(in_dir);
  if (vm.count("kv-heads")) o.kv_heads = vm["kv-heads"].as<int>();
  if (vm.count("kv-head-dim")) o.qk_head_dim = o.v_head_dim = vm["kv-head-dim"].as<int>();
  if (vm.count("qk-head-dim")) o.qk_head_dim = vm["qk-head-dim"].as<int>();
  if (vm.count("v-head-dim")) o.v_head_dim = vm["v-head-dim"].as<int>();
  if (vm.count("group-map"))
    o.group_map = parse_group_map(vm["group-map"].as<std::string>(), int(cfg.n_heads), "--group-map");
  if (vm.count("modules")) {
    if (!cfg.is_encoder_decoder())
      throw InputError("--modules", "",
                       std::string("only for T5; ") + family_name(cfg.family) + " has decoder self-attention only");
    o.modules = parse_modules(vm["modules"].as<std::string>());
  }
  if (vm.count("layers"))
    o.layers = parse_layers(vm["layers"].as<std::string>(), std::max(cfg.n_layers, cfg.n_encoder_layers), "--layers");

  if (report && !vm.count("eval")) throw InputError("--report", "", "needs --eval FILE (held-out text)");
  if (calib_tokens <= 0 || calib_len < 2 || eval_tokens < 2)
    throw InputError("--calib-tokens/--calib-seq-len/--eval-tokens", "", "must be positive");
  if (cfg.max_positions > 0) calib_len = std::min(calib_len, cfg.max_positions);

  // Everything that can reject the input happens before the output folder is started.
  // Calibration and --report run the model one block at a time (Residency::OneBlock), so memory
  // holds one block, the hidden states of the text and one block's statistics, whatever the depth.
  const bool calibrate = vm.count("calib") != 0;
  std::shared_ptr<const Checkpoint> source_ckpt;
  std::unique_ptr<Model> source;
  const int64_t context = default_eval_context(cfg);
  if (calibrate || report) {
    source_ckpt = std::make_shared<const Checkpoint>(in_dir);
    const at::ScalarType dtype = runtime_dtype(dtype_text, *source_ckpt);
    // The largest pass: calibration sequences, or --report's windows (stride context / 2).
    const auto need_at = [&](at::ScalarType dt, int64_t tokens) {
      const int64_t calib_seqs = calibrate ? std::max<int64_t>(1, tokens / calib_len) : 0;
      const int64_t windows = report ? eval_tokens / std::max<int64_t>(1, context / 2) + 1 : 0;
      return calib_seqs * calib_len >= windows * context ? one_block_need(*source_ckpt, dt, calib_seqs, calib_len, 2)
                                                         : one_block_need(*source_ckpt, dt, windows, context, 2);
    };
    std::vector<std::pair<std::string, MemoryNeed>> smaller;
    if (dtype == at::kFloat) smaller.push_back({"--dtype bf16", need_at(at::kBFloat16, calib_tokens)});
    for (int64_t t = calib_tokens / 2; calibrate && t >= calib_len; t /= 2)
      smaller.push_back({"--calib-tokens " + std::to_string(t), need_at(dtype, t)});
    require_memory(in_dir, need_at(dtype, calib_tokens), at::kCPU, smaller);
    source = load_model(source_ckpt, Placement{at::kCPU, dtype}, Residency::OneBlock);
  }
  std::unique_ptr<CalibrationStore> calibration;
  struct ScratchFolder {  // the spilled statistics, removed however the conversion ends
    std::string path;
    ~ScratchFolder() {
      if (!path.empty()) files::remove_all(path);
    }
  } scratch;
  if (calibrate) {
    const auto seqs = calibration_sequences(in_dir, vm["calib"].as<std::string>(), calib_tokens, calib_len);
    scratch.path = make_scratch_folder(out_dir, "calib");
    calibration = std::make_unique<CalibrationStore>(scratch.path);
    CalibrationTiming t;
    collect_calibration(*source, seqs, *calibration, 8, &t);
    std::cout << std::fixed << std::setprecision(1) << "calibration: " << t.tokens << " tokens of "
              << vm["calib"].as<std::string>() << " in " << t.total_seconds << " s (forward "
              << t.total_seconds - t.statistics_seconds << " s, statistics " << t.statistics_seconds << " s), "
              << runtime_dtype_name(source->placement().dtype) << ", one block at a time\n";
    o.calibration = calibration.get();
  }
  std::vector<int64_t> eval_ids;
  int64_t eval_bytes = 0;
  PerplexityResult before;
  if (report) {
    std::tie(eval_ids, eval_bytes) =
        read_eval_tokens(*load_tokenizer(in_dir), vm["eval"].as<std::string>(), eval_tokens);
    before = perplexity(*source, eval_ids, eval_bytes, context, context / 2);
  }
  if (source) source.reset();  // its shell (embeddings, head) is not needed while converting

  const ConvertSummary s = convert_checkpoint(in_dir, out_dir, o, &std::cout);
  std::cout << "converted " << s.blocks << " attention blocks; KV cache per token (fp32) "
            << s.kv_bytes_per_token_before << " -> " << s.kv_bytes_per_token_after << " bytes (" << std::fixed
            << std::setprecision(3) << double(s.kv_bytes_per_token_after) / double(s.kv_bytes_per_token_before)
            << "x)\n"
            << "parameters " << s.params_before << " -> " << s.params_after
            << (s.ffn_dim_after != s.ffn_dim_before
                    ? " (FFN width " + std::to_string(s.ffn_dim_before) + " -> " + std::to_string(s.ffn_dim_after) + ")"
                    : "")
            << "\n"
            << (s.replaced ? "replaced the existing " : "wrote ") << out_dir << "\n";
  if (report) {
    const auto converted =
        load_model(out_dir, Placement{at::kCPU, runtime_dtype(dtype_text, *source_ckpt)}, Residency::OneBlock);
    const PerplexityResult after = perplexity(*converted, eval_ids, eval_bytes, context, context / 2);
    std::cout << std::setprecision(3) << "held-out (" << before.tokens << " tokens, step 0): perplexity "
              << before.perplexity() << " -> " << after.perplexity() << ", bits/byte " << before.bits_per_byte()
              << " -> " << after.bits_per_byte() << " (" << std::showpos
              << 100 * (after.perplexity() / before.perplexity() - 1) << std::noshowpos << "% perplexity)\n";
  }
  return 0;
}

}  // namespace gqa::cli
