// gqa eval MODEL_DIR: quality (held-out perplexity and bits per byte, minimal-pair accuracy) and
// decode speed (time per token at several batch sizes, prefill throughput, KV-cache bytes, peak
// memory), optionally beside a baseline model (e.g. the MHA source) measured in the same run.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>

#include "cli/options.h"
#include "compare/csv.h"
#include "core/error.h"
#include "core/files.h"
#include "core/format.h"
#include "core/model/memory_plan.h"
#include "eval/decode_bench.h"
#include "eval/minimal_pairs.h"
#include "eval/perplexity.h"
#include "eval/quality.h"
#include "eval/summarize.h"

namespace gqa::cli {
namespace {

// A line on stderr redrawn in place while a long text is scored (a terminal only, as uptrain's
// progress bar): tokens scored, the share and the time so far.
PerplexityProgress progress_line(const std::string& file) {
  if (!files::stderr_is_terminal()) return {};
  const auto started = std::chrono::steady_clock::now();
  return [file, started](int64_t scored, int64_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "\r  %s: %lld/%lld tokens scored (%.0f%%), %.0f s\033[K", file.c_str(), (long long)scored,
                 (long long)total, 100.0 * double(scored) / double(std::max<int64_t>(1, total)), s);
    std::fflush(stderr);
  };
}

void clear_progress_line() {
  if (files::stderr_is_terminal()) std::fprintf(stderr, "\r\033[K");
}

}  // namespace

int eval(const Args& args) {
  po::options_description opts(
      "gqa eval MODEL_DIR [--text FILE...] [--pairs FILE...] [--speed] [--baseline DIR] [options]");
  QualityOptions quality;  // its defaults are the ones shown here
  SummaryOptions& summary = quality.summary;
  std::string baseline, batches_text, dtype_text;
  bool json_out = false, csv_out = false, speed = false, one_block = false;
  int threads = 0;
  DecodeBenchOptions bench;
  opts.add_options()("help,h", "show options")("model", po::value<std::string>()->required(), "model folder")(
      "text", po::value<std::vector<std::string>>(&quality.text)->multitoken(),
      "held-out text files (plain or .gz): perplexity, bits/byte")(
      "pairs", po::value<std::vector<std::string>>()->multitoken(),
      "BLiMP-format JSONL (sentence_good/sentence_bad): accuracy")(
      "summaries", po::value<std::string>(&quality.summaries),
      "JSONL source/reference pairs: ROUGE-1/2/L of generated summaries")(
      "summary-examples", po::value<int64_t>(&summary.max_examples)->default_value(summary.max_examples),
      "records summarized")(
      "summary-tokens", po::value<int64_t>(&summary.max_new_tokens)->default_value(summary.max_new_tokens),
      "longest summary in tokens")("summary-beams", po::value<int64_t>(&summary.beams)->default_value(summary.beams),
                                   "beam search for summaries (1: greedy)")(
      "length-penalty", po::value<double>(&summary.length_penalty)->default_value(summary.length_penalty),
      "beam score = log-prob / length^this")(
      "source-field", po::value<std::string>(&summary.source_field)->default_value(summary.source_field),
      "JSONL source field")(
      "target-field", po::value<std::string>(&summary.target_field)->default_value(summary.target_field),
      "JSONL reference field")("speed", po::bool_switch(&speed), "decode time per token at --batch-sizes")(
      "baseline", po::value<std::string>(&baseline), "a second model (e.g. the MHA source) measured in the same run")(
      "max-tokens", po::value<int64_t>(&quality.max_tokens)->default_value(quality.max_tokens),
      "tokens scored per text file (predicted tokens: the text read is one token longer)")(
      "context", po::value<int64_t>(&quality.context)->default_value(quality.context),
      "window length (0: min(model positions, 512))")(
      "stride", po::value<int64_t>(&quality.stride)->default_value(quality.stride), "window step (0: context / 2)")(
      "batch", po::value<int64_t>(&quality.batch)->default_value(quality.batch), "sequences per forward for quality")(
      "batch-sizes", po::value<std::string>(&batches_text)->default_value("1,16,512"), "decode batch sizes")(
      "prompt-len", po::value<int64_t>(&bench.prompt_len)->default_value(128), "prompt tokens before decoding")(
      "new-tokens", po::value<int64_t>(&bench.new_tokens)->default_value(32), "decoded tokens per sequence")(
      "repeats", po::value<int>(&bench.repeats)->default_value(3), "timed runs per batch size (after one warm-up)")(
      "threads", po::value<int>(&threads)->default_value(0), "CPU threads (0: LibTorch default)")(
      "dtype", po::value<std::string>(&dtype_text)->default_value("auto"),
      "weights and activations: auto (the checkpoint's own) | f32 | bf16 | f16")(
      "one-block", po::bool_switch(&one_block),
      "run the model one block at a time (blocks loaded as they run): perplexity of models larger than memory (--text "
      "only)")("json", po::bool_switch(&json_out), "one JSON object per measurement instead of the table")(
      "csv", po::bool_switch(&csv_out), "one CSV row per measurement (a column per field) instead of the table");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"model"})) return 0;
  if (quality.max_tokens < 2 || quality.context < 0 || quality.stride < 0 || quality.batch < 1 ||
      bench.prompt_len < 1 || bench.new_tokens < 1 || bench.repeats < 1)
    throw InputError("--max-tokens/--context/--stride/--batch/--prompt-len/--new-tokens/--repeats", "",
                     "must be positive");
  if (threads < 0) throw InputError("--threads", "", "must be 0 (default) or positive");
  if (json_out && csv_out) throw InputError("--json/--csv", "", "give one of them");
  // --json prints each record as it is measured; --csv needs every record's fields for its header.
  const bool records_out = json_out || csv_out;
  std::vector<nlohmann::json> records;
  const auto emit = [&](const nlohmann::json& record) {
    if (csv_out)
      records.push_back(record);
    else
      std::cout << record.dump() << std::endl;
  };
  if (threads > 0) at::set_num_threads(threads);
  bench.batches = split_list<int64_t>(batches_text, "--batch-sizes");
  if (!vm.count("text") && !vm.count("pairs") && !vm.count("summaries") && !speed)
    throw InputError("options", "", "nothing to measure: give --text, --pairs, --summaries and/or --speed");
  if (summary.max_examples < 1 || summary.max_new_tokens < 1)
    throw InputError("--summary-examples/--summary-tokens", "", "must be positive");
  if (summary.beams < 1) throw InputError("--summary-beams", "", "must be at least 1");
  if (one_block && (vm.count("pairs") || vm.count("summaries") || speed))
    throw InputError("--one-block", "",
                     "scores --text only (minimal pairs, summaries and --speed need the whole model in memory)");
  const auto pairs =
      vm.count("pairs") ? read_minimal_pairs(vm["pairs"].as<std::vector<std::string>>()) : std::vector<MinimalPair>{};

  std::vector<std::string> models{vm["model"].as<std::string>()};
  if (!baseline.empty()) models.push_back(baseline);
  std::map<std::string, std::vector<DecodeBenchResult>> speeds;
  for (const std::string& dir : models) {
    std::unique_ptr<Model> model;
    {
      auto ckpt = std::make_shared<const Checkpoint>(dir);
      const at::ScalarType dtype = runtime_dtype(dtype_text, *ckpt);
      const int64_t ctx = quality.context_for(ckpt->config());
      const int64_t step = quality.stride_for(ctx);
      const int64_t ids = quality.max_tokens + 1;  // read_eval_tokens: one more than are scored
      const int64_t windows = ids <= ctx ? 1 : (ids - ctx + step - 1) / step + 1;  // as perplexity() cuts them
      const auto need_at = [&](at::ScalarType dt, bool streamed) {
        if (streamed) return one_block_need(*ckpt, dt, windows, ctx, 0);
        MemoryNeed n = whole_model_need(*ckpt, dt, std::min(quality.batch, windows), ctx, /*kv_cache=*/false);
        if (speed)
          for (int64_t b : bench.batches) {
            const MemoryNeed d = whole_model_need(*ckpt, dt, b, bench.prompt_len + bench.new_tokens, /*kv_cache=*/true);
            if (d.total() > n.total()) n = d;
          }
        return n;
      };
      std::vector<std::pair<std::string, MemoryNeed>> smaller;
      if (dtype == at::kFloat) smaller.push_back({"--dtype bf16", need_at(at::kBFloat16, one_block)});
      const bool text_only = !vm.count("pairs") && !vm.count("summaries") && !speed;
      if (!one_block && text_only) {
        smaller.push_back({"--one-block", need_at(dtype, true)});
        if (dtype == at::kFloat) smaller.push_back({"--one-block --dtype bf16", need_at(at::kBFloat16, true)});
      }
      require_memory(dir, need_at(dtype, one_block), at::kCPU, smaller);
      model = load_model(ckpt, Placement{at::kCPU, dtype}, one_block ? Residency::OneBlock : Residency::Whole);
    }
    if (vm.count("text") || !pairs.empty() || vm.count("summaries")) {
      // Each result is printed as soon as it is measured.
      QualityHooks hooks;
      hooks.scoring = progress_line;
      hooks.text_measured = [&](const TextQuality& text) {
        clear_progress_line();
        const PerplexityResult& r = text.result;
        if (records_out)
          emit({{"model", dir},
                {"metric", "perplexity"},
                {"text", text.file},
                {"tokens", r.tokens},
                {"bytes", r.bytes},
                {"perplexity", r.perplexity()},
                {"bits_per_byte", r.bits_per_byte()},
                {"context", text.context}});
        else
          std::cout << std::fixed << std::setprecision(3) << dir << "  " << text.file << ": perplexity "
                    << r.perplexity() << ", bits/byte " << std::setprecision(4) << r.bits_per_byte() << " (" << r.tokens
                    << " tokens, context " << text.context << ")\n";
      };
      hooks.pairs_measured = [&](const MinimalPairResult& r) {
        if (records_out) {
          nlohmann::json by = nlohmann::json::object();
          for (const auto& [name, cn] : r.by_phenomenon) by[name] = {{"correct", cn.first}, {"pairs", cn.second}};
          emit({{"model", dir},
                {"metric", "minimal_pairs"},
                {"pairs", r.pairs},
                {"correct", r.correct},
                {"accuracy", r.accuracy()},
                {"by_phenomenon", by}});
        } else {
          std::cout << dir << "  minimal pairs: " << std::fixed << std::setprecision(1) << 100 * r.accuracy() << "% ("
                    << r.correct << "/" << r.pairs << ")";
          for (const auto& [name, cn] : r.by_phenomenon)
            std::cout << "; " << name << " " << cn.first << "/" << cn.second;
          std::cout << "\n";
        }
      };
      hooks.summaries_measured = [&](const SummaryResult& r) {
        const std::string& file = quality.summaries;
        if (records_out)
          emit({{"model", dir},
                {"metric", "rouge"},
                {"data", file},
                {"examples", r.examples},
                {"rouge1", r.mean.rouge1.fmeasure},
                {"rouge2", r.mean.rouge2.fmeasure},
                {"rougeL", r.mean.rougeL.fmeasure}});
        else
          std::cout << std::fixed << std::setprecision(2) << dir << "  " << file << ": ROUGE-1 "
                    << 100 * r.mean.rouge1.fmeasure << ", ROUGE-2 " << 100 * r.mean.rouge2.fmeasure << ", ROUGE-L "
                    << 100 * r.mean.rougeL.fmeasure << " (" << r.examples << " greedy summaries)\n";
      };
      measure_quality(*model, *load_tokenizer(dir), pairs, quality, hooks);
    }
    if (speed) speeds[dir] = decode_bench(*model, bench);
  }
  const auto& mine = speeds[models[0]];
  if (speed && !records_out)
    std::cout << "decode (" << bench.prompt_len << "-token prompts, " << bench.new_tokens << " new tokens, median of "
              << bench.repeats << "):\n  batch   ms/step   tokens/s   prefill tok/s   KV cache     peak mem"
              << (baseline.empty() ? "" : "   baseline ms/step   speedup") << "\n";
  for (size_t i = 0; i < mine.size(); ++i) {
    const DecodeBenchResult& r = mine[i];
    const double tokens_per_s = 1e3 * double(r.batch) / r.ms_per_step_median;
    const DecodeBenchResult* base = baseline.empty() ? nullptr : &speeds[baseline][i];
    if (records_out) {
      nlohmann::json j{{"model", models[0]},
                       {"metric", "decode"},
                       {"batch", r.batch},
                       {"ms_per_step", r.ms_per_step_median},
                       {"ms_per_step_min", r.ms_per_step_min},
                       {"tokens_per_s", tokens_per_s},
                       {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                       {"kv_cache_bytes", r.kv_cache_bytes},
                       {"peak_bytes", r.peak_bytes},
                       {"prompt_len", bench.prompt_len},
                       {"new_tokens", bench.new_tokens},
                       {"threads", at::get_num_threads()}};
      if (base) {
        j["baseline"] = baseline;
        j["baseline_ms_per_step"] = base->ms_per_step_median;
        j["baseline_kv_cache_bytes"] = base->kv_cache_bytes;
        j["speedup"] = base->ms_per_step_median / r.ms_per_step_median;
      }
      emit(j);
    } else {
      std::cout << std::fixed << std::setw(7) << r.batch << std::setprecision(3) << std::setw(10)
                << r.ms_per_step_median << std::setprecision(0) << std::setw(11) << tokens_per_s << std::setw(16)
                << r.prefill_tokens_per_s << std::setw(13) << format_bytes(double(r.kv_cache_bytes)) << std::setw(13)
                << format_bytes(double(r.peak_bytes));
      if (base)
        std::cout << std::setprecision(3) << std::setw(19) << base->ms_per_step_median << std::setprecision(2)
                  << std::setw(9) << base->ms_per_step_median / r.ms_per_step_median << "x";
      std::cout << "\n";
    }
  }
  if (csv_out) std::cout << report::records_csv(records);
  return 0;
}

}  // namespace gqa::cli
