// gqa compare MHA_DIR OUT_DIR --data TRAIN --eval-data HELDOUT: every strategy x KV-head count
// (and, with --targets mla, latent attention at each count's KV bytes) converted, uptrained and
// measured against the MHA source in one run, into a report folder.
#include <iostream>

#include "cli/training_options.h"
#include "compare/compare.h"
#include "core/error.h"
#include "uptrain/stop_signals.h"

namespace gqa::cli {
int compare(const Args& args) {
  po::options_description opts("gqa compare MHA_DIR OUT_DIR --data TRAIN... --eval-data HELDOUT [options]");
  CompareOptions c;
  std::string strategies, kv_heads, batches, targets;
  opts.add_options()("help,h", "show options")("mha", po::value<std::string>(&c.mha_dir)->required(),
                                               "the MHA source model folder")(
      "out", po::value<std::string>(&c.out_dir)->required(),
      "report folder (re-running resumes: finished cells are reused)")(
      "strategies",
      po::value<std::string>(&strategies)->default_value("mean,first,weighted,random-weighted,similarity,svd"),
      "conversion strategies, comma-separated")(
      "targets", po::value<std::string>(&targets)->default_value("gqa"),
      "gqa (the strategies), mla (latent attention caching the KV bytes of each --kv-heads count), or gqa,mla")(
      "kv-heads", po::value<std::string>(&kv_heads)->default_value("8,4,2,1"),
      "KV-head counts (those dividing the heads)")(
      "uptrain-fraction", po::value<double>(),
      "uptraining budget as a fraction of the pretraining tokens (default 0.05)")("no-uptrain",
                                                                                  "measure at step 0 only")(
      "eval-data", po::value<std::vector<std::string>>(&c.quality.text)->multitoken(), "held-out text for perplexity")(
      "pairs", po::value<std::vector<std::string>>(&c.pairs)->multitoken(), "BLiMP-format minimal pairs")(
      "summaries", po::value<std::string>(&c.quality.summaries),
      "JSONL document/summary pairs: ROUGE-1/2/L of greedy summaries")(
      "summary-examples",
      po::value<int64_t>(&c.quality.summary.max_examples)->default_value(c.quality.summary.max_examples),
      "records summarized per model")("eval-tokens",
                                      po::value<int64_t>(&c.quality.max_tokens)->default_value(c.quality.max_tokens),
                                      "held-out tokens scored (predicted tokens: the text read is one token longer)")(
      "calib", po::value<std::string>(&c.calib_text),
      "calibration text for svd, similarity and mla (default: the eval data)")(
      "speed-batches", po::value<std::string>(&batches)->default_value("1,16,512"), "decode batch sizes")(
      "prompt-len", po::value<int64_t>(&c.speed.prompt_len)->default_value(128), "decode benchmark prompt length")(
      "new-tokens", po::value<int64_t>(&c.speed.new_tokens)->default_value(32), "decode benchmark new tokens")(
      "speed-repeats", po::value<int>(&c.speed.repeats)->default_value(c.speed.repeats),
      "timed decode runs per model and batch (each model's fastest is reported)")(
      "noisy-spread", po::value<double>(&c.noisy_spread)->default_value(c.noisy_spread),
      "flag a decode timing whose repeats' slowest/fastest - 1 exceeds this as noisy (after one re-measure)")(
      "no-speed", "skip the decode benchmark");
  add_training_options(opts, c.train);
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"mha", "out"})) return 0;
  finish_training_options(vm, c.train);
  c.dtype = c.train.dtype;  // one --dtype for the measurements, calibration and uptraining
  c.strategies = split_list<std::string>(strategies, "--strategies");
  c.kv_heads = split_list<int>(kv_heads, "--kv-heads");
  c.targets = split_list<std::string>(targets, "--targets");
  c.speed.batches = split_list<int64_t>(batches, "--speed-batches");
  c.uptrain = !vm.count("no-uptrain");
  c.measure_speed = !vm.count("no-speed");
  // One uptraining budget: --uptrain-fraction beside another budget option (given at all, even as 0) is an
  // error; it used to win silently.
  const char* budget = c.train.steps > 0       ? "--steps"
                       : c.train.tokens > 0    ? "--tokens"
                       : c.train.epochs > 0    ? "--epochs"
                       : c.train.fraction != 0 ? "--fraction"
                                               : nullptr;
  if (vm.count("uptrain-fraction")) {
    for (const char* option : {"steps", "tokens", "epochs", "fraction"})
      if (!vm[option].defaulted())
        throw InputError("--uptrain-fraction", "",
                         std::string("and --") + option + " both set the uptraining budget: give one");
    c.train.fraction = vm["uptrain-fraction"].as<double>();
  } else if (!budget) {
    c.train.fraction = 0.05;
  }
  if (c.speed.repeats < 1) throw InputError("--speed-repeats", "", "expected at least 1");
  const CompareOutcome outcome = run_compare(c, std::cout);
  if (outcome.stopped_by) {  // as gqa train and gqa uptrain stop on a signal
    const TrainSummary& t = outcome.stopped_training;
    std::cout << "compare: stopped by " << StopSignals::name(outcome.stopped_by) << " while uptraining "
              << outcome.stopped_cell << ", after step " << t.steps << "; checkpoint " << t.checkpoint
              << "\ncontinue with: " << command_line("compare", args) << std::endl;
    return 128 + outcome.stopped_by;
  }
  std::cout << "report: " << outcome.report << "\n";
  return 0;
}

}  // namespace gqa::cli
