#include "compare/compare.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>

#include "compare/report.h"
#include "convert/calibration.h"
#include "convert/converter.h"
#include "convert/strategy.h"
#include "core/error.h"
#include "core/files.h"
#include "core/format.h"
#include "core/tokenizers/tokenizer.h"
#include "eval/minimal_pairs.h"
#include "eval/quality.h"
#include "uptrain/stop_signals.h"
#include "uptrain/train_log.h"

namespace gqa {
namespace {

using Clock = std::chrono::steady_clock;
using report::CellResult;

struct Cell {
  std::string strategy;
  int kv = 0;
  bool baseline = false;
  std::string name() const { return baseline ? "mha" : strategy + "-kv" + std::to_string(kv); }
};

// A model folder loaded once for all its measurements.
struct Loaded {
  std::string dir;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  Loaded(const std::string& d, const std::string& dtype) : dir(d), tokenizer(load_tokenizer(d)) {
    const Checkpoint ckpt(d);
    model = load_model(ckpt, Placement{at::kCPU, runtime_dtype(dtype, ckpt)});
  }
};

// The cell's quality on the held-out text (its first file: one perplexity per cell), summaries
// and minimal pairs.
report::Quality cell_quality(const Loaded& m, const CompareOptions& o, const std::vector<MinimalPair>& pairs) {
  QualityOptions options = o.quality;
  if (options.text.size() > 1) options.text.resize(1);
  const QualityResult measured = measure_quality(*m.model, *m.tokenizer, pairs, options);
  report::Quality q;
  if (!measured.texts.empty()) {
    q.perplexity = measured.texts.front().result.perplexity();
    q.bits_per_byte = measured.texts.front().result.bits_per_byte();
  }
  if (measured.summaries) {
    q.rouge1 = measured.summaries->mean.rouge1.fmeasure;
    q.rouge2 = measured.summaries->mean.rouge2.fmeasure;
    q.rouge_l = measured.summaries->mean.rougeL.fmeasure;
  }
  if (measured.minimal_pairs) q.minimal_pair_accuracy = measured.minimal_pairs->accuracy();
  return q;
}

// The cell's decode speed: per batch, the fastest repeat and the spread, timed in turns with
// `mha` (the MHA model, loaded beside the cell's) when given, whose time and spread go beside
// them. `say` is told of re-measures and of timings left noisy.
void measure_speed(const Loaded& m, const Loaded* mha, const CompareOptions& o, CellResult& cell,
                   const std::function<void(const std::string&)>& say) {
  cell.kv_bytes_per_token = m.model->config().kv_bytes_per_token(4);
  cell.parameters = Checkpoint(m.dir).parameter_count();
  if (!o.measure_speed) return;
  std::vector<const Model*> models{m.model.get()};
  if (mha) models.push_back(mha->model.get());
  for (const InterleavedDecodeResult& r : decode_bench_interleaved(models, o.speed, o.noisy_spread)) {
    const InterleavedTiming& t = r.timing;
    cell.decode_ms_per_token[r.batch] = 1e3 * t.runs[0].min();
    cell.decode_spread[r.batch] = t.runs[0].spread();
    if (mha) {
      cell.paired_mha_ms_per_token[r.batch] = 1e3 * t.runs[1].min();
      cell.paired_mha_spread[r.batch] = t.runs[1].spread();
    }
    if (t.noisy) cell.noisy_batches.insert(r.batch);
    if (t.passes > 1) {
      double first = 0;
      for (double spread : t.first_pass_spreads) first = std::max(first, spread);
      say("decode speed at batch " + std::to_string(r.batch) + ": repeats " + format_percent(first) +
          " apart, measured again: " + format_percent(t.spread()) + (t.noisy ? ", noisy" : ", clean"));
    }
  }
}

// The uptraining's loss by step from its log records of `kind` ("train", "valid"); records
// without a finite loss are left out.
std::vector<report::LossPoint> loss_curve(const std::vector<TrainLogRecord>& log, const std::string& kind) {
  std::vector<report::LossPoint> curve;
  for (const TrainLogRecord& record : log) {
    const auto loss = record.scalars.find("loss");
    if (record.kind == kind && loss != record.scalars.end() && std::isfinite(loss->second))
      curve.push_back({record.step, loss->second});
  }
  return curve;
}

}  // namespace

CompareOutcome run_compare(const CompareOptions& o, std::ostream& log) {
  const ModelConfig mha = load_config(o.mha_dir);
  const int heads = int(mha.n_heads);
  const auto targets = [&o](const char* t) { return std::count(o.targets.begin(), o.targets.end(), t) > 0; };
  for (const std::string& t : o.targets)
    if (t != "gqa" && t != "mla") throw InputError("--targets", t, "expected gqa or mla");
  if (o.targets.empty()) throw InputError("--targets", "", "give gqa, mla or both");
  if (targets("gqa"))
    for (const std::string& s : o.strategies)
      if (!find_strategy(s)) throw InputError("--strategies", s, "unknown strategy");
  const std::vector<std::string>& eval_text = o.quality.text;
  if (eval_text.empty() && o.pairs.empty() && o.quality.summaries.empty())
    throw InputError("--eval-data", "", "give held-out text (--eval-data), --pairs or --summaries");
  for (const std::string& f : eval_text)
    if (!files::exists(f)) throw InputError(f, "", "evaluation text does not exist");
  std::vector<Cell> cells{{"mha", heads, true}};
  std::vector<std::string> strategies = targets("gqa") ? o.strategies : std::vector<std::string>{};
  if (targets("mla")) strategies.push_back("mla");  // latent attention at each count's KV bytes
  for (const std::string& s : strategies)
    for (int kv : o.kv_heads)
      if (kv >= 1 && kv < heads && heads % kv == 0) cells.push_back({s, kv, false});
  if (cells.size() == 1)
    throw InputError("--kv-heads", "", "no KV-head count below " + std::to_string(heads) + " divides it");
  if (!(o.noisy_spread > 0)) throw InputError("--noisy-spread", "", "expected a fraction above 0 (0.25: 25%)");
  // --threads holds for every measurement, the baseline's included, not only from the first
  // uptraining on (the trainer sets it for the whole process).
  if (o.train.threads > 0) at::set_num_threads(o.train.threads);
  const std::string cells_dir = o.out_dir + "/cells";
  if (!files::make_directories(cells_dir)) throw InputError(cells_dir, "", "cannot create the comparison folder");

  const std::vector<MinimalPair> pairs = o.pairs.empty() ? std::vector<MinimalPair>{} : read_minimal_pairs(o.pairs);
  // The MHA model's calibration statistics serve every svd / similarity cell: computed once.
  std::optional<CalibrationStore> calibration;
  std::vector<CellResult> results;
  double spent = 0;
  int measured = 0;
  const std::string calib = o.calib_text.empty() ? (eval_text.empty() ? "" : eval_text.front()) : o.calib_text;
  for (size_t i = 0; i < cells.size(); ++i) {
    const Cell& cell = cells[i];
    const std::string json_path = cells_dir + "/" + cell.name() + ".json";
    auto say = [&](const std::string& stage) {
      const size_t left = cells.size() - i;
      const double per_cell = measured ? spent / measured : 0;
      log << "[" << i + 1 << "/" << cells.size() << "] " << cell.name() << ": " << stage
          << (measured ? " (ETA " + format_clock(per_cell * double(left)) + ")" : "") << std::endl;
    };
    if (files::exists(json_path)) {
      results.push_back(report::load_cell(json_path));
      say("done earlier, reused");
      continue;
    }
    const auto t0 = Clock::now();
    CellResult r;
    r.strategy = cell.strategy;
    r.kv_heads = cell.kv;
    r.is_baseline = cell.baseline;
    const std::string work = cells_dir + "/" + cell.name();
    if (cell.baseline) {
      say("measuring the MHA baseline");
      const Loaded mha_model(o.mha_dir, o.dtype);
      r.step0 = cell_quality(mha_model, o, pairs);
      measure_speed(mha_model, nullptr, o, r, say);
    } else {
      const std::string converted = work + "/converted";
      if (!files::exists(converted + "/config.json")) {
        say("converting");
        ConvertOptions co;
        const bool latent = cell.strategy == "mla";
        if (latent) {
          co.latent = latent_at_kv_heads(mha, cell.kv);
        } else {
          co.strategy = cell.strategy;
          co.kv_heads = cell.kv;
        }
        co.force = true;
        if ((latent || cell.strategy == "svd" || cell.strategy == "similarity") && !calib.empty()) {
          if (!calibration) {
            // One block at a time, as gqa convert --calib: the MHA model's statistics.
            auto mha_ckpt = std::make_shared<const Checkpoint>(o.mha_dir);
            auto source =
                load_model(mha_ckpt, Placement{at::kCPU, runtime_dtype(o.dtype, *mha_ckpt)}, Residency::OneBlock);
            const int64_t len = mha.max_positions > 0 ? std::min<int64_t>(256, mha.max_positions) : 256;
            calibration = collect_calibration(*source, calibration_sequences(o.mha_dir, calib, o.calib_tokens, len));
          }
          co.calibration = &*calibration;
        }
        if (!files::make_directories(work)) throw InputError(work, "", "cannot create the cell folder");
        convert_checkpoint(o.mha_dir, converted, co);
      }
      if (cell.strategy == "mla") {
        const AttentionLayout& l = load_config(converted).layout(AttentionModule::DecoderSelf, 0);
        r.latent_rank = l.latent_rank;
        r.latent_rope_dims = l.latent_rope_dims;
      }
      say("step-0 quality");
      auto loaded = std::make_unique<Loaded>(converted, o.dtype);
      r.step0 = cell_quality(*loaded, o, pairs);
      if (o.uptrain) {
        loaded.reset();  // not held in memory beside the training
        TrainOptions t = o.train;
        t.model_dir = converted;
        t.out_dir = work + "/uptrain";
        t.resume = true;
        t.progress = false;
        std::optional<TrainSummary> trained = completed_run(t);  // an earlier run of this cell got this far
        if (!trained) {
          say("uptraining");
          std::ostringstream quiet;
          auto comm = single_process();
          trained = run_training(t, *comm, quiet);
        }
        if (trained->stopped_by) {  // its model was never written: stop here, the cell unsaved
          say(std::string("uptraining stopped by ") + StopSignals::name(trained->stopped_by) + " after step " +
              std::to_string(trained->steps));
          CompareOutcome stopped;
          stopped.stopped_by = trained->stopped_by;
          stopped.stopped_cell = cell.name();
          stopped.stopped_training = *trained;
          return stopped;
        }
        const std::vector<TrainLogRecord> log = read_train_log(trained->log_path);
        r.train_loss = loss_curve(log, "train");
        r.valid_loss = loss_curve(log, "valid");
        say("quality after uptraining");
        loaded = std::make_unique<Loaded>(trained->model_dir, o.dtype);
        r.uptrained = cell_quality(*loaded, o, pairs);
      }
      say("decode speed");
      // The MHA model beside the cell's only for this step, so that both are timed in turns.
      const std::unique_ptr<Loaded> mha_model =
          o.measure_speed ? std::make_unique<Loaded>(o.mha_dir, o.dtype) : nullptr;
      measure_speed(*loaded, mha_model.get(), o, r, say);
    }
    r.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    spent += *r.wall_seconds;
    ++measured;
    report::save_cell(r, json_path);
    results.push_back(r);
  }
  report::ReportOptions ro;
  ro.model_name = files::absolute(o.mha_dir);
  ro.noisy_spread = o.noisy_spread;
  const auto warnings = report::write_report(results, o.out_dir, ro);
  for (const std::string& w : warnings) log << "note: " << w << "\n";
  CompareOutcome outcome;
  outcome.report = o.out_dir + "/report.md";
  return outcome;
}

}  // namespace gqa
