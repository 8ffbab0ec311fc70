// gqa bench decode MODEL_DIR --baseline MHA_DIR: decode time per token of a (grouped) model against
// its baseline measured in the same run, beside what the KV cache says the attention could gain
// and how close the attention of one step comes to the device's copy bandwidth (issue #7).
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/options.h"
#include "core/config.h"
#include "core/error.h"
#include "core/format.h"
#include "eval/decode_bench.h"

namespace gqa::cli {
namespace {

constexpr const char* kIdealDefinition =
    "ideal attention speedup = baseline KV bytes read per decode step / model KV bytes read per decode step "
    "(K + V of every cached slot in every layer, at --context slots; the same ratio as the KV bytes per token)";

at::Device parse_device(const std::string& text) {
  std::optional<at::Device> d;
  try {
    d = at::Device(text);
  } catch (const c10::Error&) {}
  if (!d || !(d->is_cpu() || d->is_cuda()))
    throw InputError("--device", "", "expected cpu, cuda or cuda:N, got '" + text + "'");
  if (d->is_cuda() && !at::hasCUDA()) throw InputError("--device", text, "no CUDA device is available");
  if (d->is_cuda() && d->has_index() && d->index() >= int(at::getNumGPUs()))
    throw InputError("--device", text, "this machine has " + std::to_string(at::getNumGPUs()) + " CUDA device(s)");
  return *d;
}

// The folder's config, checked for what this benchmark needs (decoder-only, enough positions).
ModelConfig bench_config(const std::string& dir, int64_t context) {
  ModelConfig c = load_config(dir);
  if (c.is_encoder_decoder())
    throw InputError(
        c.path, "model_type",
        "bench decode measures decoder-only models; " + std::string(family_name(c.family)) + " is an encoder-decoder");
  if (c.max_positions > 0 && context > c.max_positions)
    throw InputError("--context", "",
                     std::to_string(context) + " is beyond the " + std::to_string(c.max_positions) + " positions of " +
                         dir + " (use --context " + std::to_string(c.max_positions) + " or less)");
  return c;
}

int bench_decode(const Args& args) {
  po::options_description opts(
      "gqa bench decode MODEL_DIR --baseline MHA_DIR [--batch 1,16,64,512] [--context 2048] [--new-tokens 128]\n"
      "    [--device cpu|cuda] [--dtype f32|bf16|f16] [--repeats N] [--threads N] [--max-cache-gib 8] [--json]\n\n"
      "Decode time per token of MODEL_DIR and of the baseline, measured in the same run at each batch size:\n"
      "prompts of (context - new-tokens) random tokens are prefilled (not timed), then new-tokens greedy\n"
      "decode steps fill the cache to --context slots; ms per step is the median (and min) of --repeats\n"
      "runs after a warm-up. Also per model: the KV-cache bytes; the attention of one decode step timed\n"
      "alone (every layer's grouped attention over a cache filled with --context tokens) and its\n"
      "bandwidth = (K + V cache bytes of all layers + queries + outputs) / that time; and the device's\n"
      "copy bandwidth (a 256 MiB tensor copy on CPU, 1 GiB on CUDA, bytes read + written / time).\n" +
      std::string(kIdealDefinition) +
      ".\nA --context beyond either model's positions, or a cache larger than --max-cache-gib, exits with code 2.\n\n"
      "options");
  std::string baseline, batches_text, device_text, dtype_text;
  int64_t context = 0, new_tokens = 0, copy_mib = 0;
  int repeats = 0, threads = 0;
  double max_cache_gib = 0;
  bool json_out = false;
  opts.add_options()("help,h", "show options")("model", po::value<std::string>()->required(),
                                               "model folder (e.g. the converted GQA model)")(
      "baseline", po::value<std::string>(&baseline)->required(),
      "baseline folder (e.g. the MHA source), measured in the same run")(
      "batch", po::value<std::string>(&batches_text)->default_value("1,16,64,512"), "batch sizes")(
      "context", po::value<int64_t>(&context)->default_value(2048),
      "cache slots at the last decode step: prompt + new tokens")("new-tokens",
                                                                  po::value<int64_t>(&new_tokens)->default_value(128),
                                                                  "timed decode steps per run (prefill excluded)")(
      "device", po::value<std::string>(&device_text)->default_value("cpu"), "cpu | cuda | cuda:N")(
      "dtype", po::value<std::string>(&dtype_text)->default_value("f32"),
      "weights, activations and KV cache: f32 | bf16 | f16")("repeats", po::value<int>(&repeats)->default_value(3),
                                                             "timed runs per measurement, after a warm-up")(
      "threads", po::value<int>(&threads)->default_value(0), "CPU threads (0: LibTorch default)")(
      "max-cache-gib", po::value<double>(&max_cache_gib)->default_value(8.0),
      "refuse (exit 2) when a model's KV cache at the largest batch would exceed this")(
      "copy-mib", po::value<int64_t>(&copy_mib)->default_value(0),
      "size of the copy-bandwidth tensor (0: 256 on CPU, 1024 on CUDA)")(
      "json", po::bool_switch(&json_out), "one JSON object per batch size instead of the table");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"model"})) return 0;
  const std::string model_dir = vm["model"].as<std::string>();
  if (context < 2) throw InputError("--context", "", "must be at least 2 (one prompt token and one decoded token)");
  if (new_tokens < 1) throw InputError("--new-tokens", "", "must be at least 1");
  if (new_tokens >= context)
    throw InputError("--new-tokens", "",
                     std::to_string(new_tokens) + " leaves no prompt in a context of " + std::to_string(context) +
                         " (prompt = context - new tokens must be at least 1)");
  if (repeats < 1) throw InputError("--repeats", "", "must be at least 1");
  if (threads < 0) throw InputError("--threads", "", "must be 0 (default) or positive");
  if (copy_mib < 0) throw InputError("--copy-mib", "", "must be 0 (default) or positive");
  if (!(max_cache_gib > 0) || !std::isfinite(max_cache_gib))
    throw InputError("--max-cache-gib", "", "must be a positive number");
  const std::vector<int64_t> batches = split_list<int64_t>(batches_text, "--batch");
  const at::ScalarType dtype = parse_runtime_dtype(dtype_text);
  const at::Device device = parse_device(device_text);

  // Sizes first, from config.json alone: refuse before loading anything when a cache is too big.
  const int64_t elem = int64_t(at::elementSize(dtype));
  const ModelConfig model_cfg = bench_config(model_dir, context), base_cfg = bench_config(baseline, context);
  const int64_t model_per_token = model_cfg.kv_bytes_per_token(elem),
                base_per_token = base_cfg.kv_bytes_per_token(elem);
  int64_t largest = 0;
  for (int64_t b : batches) largest = std::max(largest, b);
  const double limit = max_cache_gib * double(int64_t(1) << 30);
  for (const auto& [dir, per_token] : {std::pair{model_dir, model_per_token}, std::pair{baseline, base_per_token}}) {
    const double cache = double(per_token) * double(largest) * double(context);
    if (cache > limit)
      throw InputError("--max-cache-gib", "",
                       "the KV cache of " + dir + " at batch " + std::to_string(largest) + " x context " +
                           std::to_string(context) + " would be " + format_bytes(cache) + " (" +
                           std::to_string(per_token) + " bytes/token, " + dtype_text + "), above " +
                           format_fixed(max_cache_gib, 1) + " GiB; lower --batch/--context or raise the limit");
  }
  const double ideal = double(base_per_token) / double(model_per_token);

  if (threads > 0) at::set_num_threads(threads);
  const Placement placement{device, dtype};
  std::unique_ptr<Model> model = load_model(model_dir, placement);
  std::unique_ptr<Model> base = load_model(baseline, placement);

  const int64_t copy_bytes = (copy_mib > 0 ? copy_mib : (device.is_cuda() ? 1024 : 256)) << 20;
  const CopyBenchResult copy = copy_bandwidth(device, copy_bytes, std::max(repeats, 5));

  DecodeBenchOptions bench;
  bench.prompt_len = context - new_tokens;
  bench.new_tokens = new_tokens;
  bench.repeats = repeats;
  bench.chunked_prefill = true;

  if (!json_out) {
    std::cout << "gqa bench decode: " << model_dir << " vs baseline " << baseline << "\n"
              << "  " << device.str() << ", " << dtype_text << ", CPU threads " << at::get_num_threads() << "; context "
              << context << " = " << bench.prompt_len << "-token prompts (prefill, not timed) + " << new_tokens
              << " decode steps; median (min) of " << repeats << " after a warm-up\n"
              << "  KV cache per token: model " << model_per_token << " bytes, baseline " << base_per_token
              << " bytes\n"
              << "  " << kIdealDefinition << ": " << format_fixed(ideal, 2) << "x\n"
              << "  copy bandwidth: " << format_fixed(copy.gb_per_s, 1) << " GB/s (" << format_bytes(double(copy.bytes))
              << " tensor copy, read + written, median of " << std::max(repeats, 5) << ")\n"
              << "  attention alone: one decode step's grouped attention, all layers, over " << context
              << " cached slots; GB/s = (K + V + q + out bytes) / time\n\n"
              << std::setw(6) << "batch" << std::setw(22) << "ms/step (min)" << std::setw(22) << "baseline"
              << std::setw(9) << "speedup" << std::setw(12) << "KV cache" << std::setw(12) << "baseline" << std::setw(8)
              << "ideal" << std::setw(11) << "attn ms" << std::setw(10) << "baseline" << std::setw(9) << "speedup"
              << std::setw(11) << "attn GB/s" << std::setw(10) << "baseline" << std::setw(10) << "% copy"
              << std::setw(10) << "baseline"
              << "\n"
              << std::flush;
  }
  for (int64_t B : batches) {
    bench.batches = {B};
    const DecodeBenchResult m = decode_bench(*model, bench).front();
    const DecodeBenchResult b = decode_bench(*base, bench).front();
    const AttentionBenchResult ma = attention_bench(*model, B, context, repeats);
    const AttentionBenchResult ba = attention_bench(*base, B, context, repeats);
    const double speedup = b.ms_per_step_median / m.ms_per_step_median;
    const double attn_speedup = ba.ms_median / ma.ms_median;
    if (json_out) {
      std::cout << nlohmann::json{{"metric", "bench_decode"},
                                  {"model", model_dir},
                                  {"baseline", baseline},
                                  {"device", device.str()},
                                  {"dtype", dtype_text},
                                  {"threads", at::get_num_threads()},
                                  {"batch", B},
                                  {"context", context},
                                  {"prompt_len", bench.prompt_len},
                                  {"new_tokens", new_tokens},
                                  {"repeats", repeats},
                                  {"ms_per_step", m.ms_per_step_median},
                                  {"ms_per_step_min", m.ms_per_step_min},
                                  {"baseline_ms_per_step", b.ms_per_step_median},
                                  {"baseline_ms_per_step_min", b.ms_per_step_min},
                                  {"speedup", speedup},
                                  {"tokens_per_s", 1e3 * double(B) / m.ms_per_step_median},
                                  {"kv_cache_bytes", m.kv_cache_bytes},
                                  {"baseline_kv_cache_bytes", b.kv_cache_bytes},
                                  {"kv_bytes_per_token", model_per_token},
                                  {"baseline_kv_bytes_per_token", base_per_token},
                                  {"kv_bytes_read_per_step", ma.kv_bytes},
                                  {"baseline_kv_bytes_read_per_step", ba.kv_bytes},
                                  {"ideal_attention_speedup", double(ba.kv_bytes) / double(ma.kv_bytes)},
                                  {"attention_ms", ma.ms_median},
                                  {"attention_ms_min", ma.ms_min},
                                  {"baseline_attention_ms", ba.ms_median},
                                  {"baseline_attention_ms_min", ba.ms_min},
                                  {"attention_speedup", attn_speedup},
                                  {"attention_bytes_read", ma.bytes_read},
                                  {"baseline_attention_bytes_read", ba.bytes_read},
                                  {"attention_gb_per_s", ma.gb_per_s()},
                                  {"baseline_attention_gb_per_s", ba.gb_per_s()},
                                  {"copy_bytes", copy.bytes},
                                  {"copy_gb_per_s", copy.gb_per_s},
                                  {"attention_bw_fraction", ma.gb_per_s() / copy.gb_per_s},
                                  {"baseline_attention_bw_fraction", ba.gb_per_s() / copy.gb_per_s}}
                       .dump()
                << "\n"
                << std::flush;
    } else {
      std::cout << std::setw(6) << B << std::setw(22)
                << format_fixed(m.ms_per_step_median, 3) + " (" + format_fixed(m.ms_per_step_min, 3) + ")"
                << std::setw(22)
                << format_fixed(b.ms_per_step_median, 3) + " (" + format_fixed(b.ms_per_step_min, 3) + ")"
                << std::setw(9) << format_fixed(speedup, 2) + "x" << std::setw(12)
                << format_bytes(double(m.kv_cache_bytes)) << std::setw(12) << format_bytes(double(b.kv_cache_bytes))
                << std::setw(8) << format_fixed(double(ba.kv_bytes) / double(ma.kv_bytes), 2) + "x" << std::setw(11)
                << format_fixed(ma.ms_median, 3) << std::setw(10) << format_fixed(ba.ms_median, 3) << std::setw(9)
                << format_fixed(attn_speedup, 2) + "x" << std::setw(11) << format_fixed(ma.gb_per_s(), 1)
                << std::setw(10) << format_fixed(ba.gb_per_s(), 1) << std::setw(10)
                << format_fixed(100 * ma.gb_per_s() / copy.gb_per_s, 0) + "%" << std::setw(10)
                << format_fixed(100 * ba.gb_per_s() / copy.gb_per_s, 0) + "%"
                << "\n"
                << std::flush;
    }
  }
  return 0;
}

void usage(std::ostream& os) {
  os << "usage: gqa bench <sub-command> [options]   (gqa bench <sub-command> --help for its options)\n\n"
        "sub-commands:\n"
        "  decode      decode time per token, KV bytes, ideal attention speedup and attention bandwidth vs a "
        "baseline\n";
}

}  // namespace

int bench(const Args& args) {
  if (args.empty()) throw InputError("bench", "", "no sub-command given (gqa bench decode --help)");
  if (args[0] == "--help" || args[0] == "-h") {
    usage(std::cout);
    return 0;
  }
  if (args[0] == "decode") return bench_decode(Args(args.begin() + 1, args.end()));
  throw InputError("bench", "", "unknown sub-command '" + args[0] + "' (known: decode)");
}

}  // namespace gqa::cli
