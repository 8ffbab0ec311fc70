// gqa uptrain CONVERTED_DIR OUT_DIR --data ...: continues training a converted model on real text
// for a small budget (e.g. --fraction 0.05 of its pretraining tokens) so it recovers MHA quality.
#include "cli/training_options.h"

namespace gqa::cli {

int uptrain(const Args& args) {
  po::options_description opts("gqa uptrain MODEL_DIR OUT_DIR --data PATH... (--steps N | --tokens N | --fraction F | --epochs N) [options]");
  TrainOptions o;
  opts.add_options()("help,h", "show options")
      ("model", po::value<std::string>(&o.model_dir)->required(), "model folder (converted by gqa convert, or any supported one)")
      ("out", po::value<std::string>(&o.out_dir)->required(), "output folder: logs, checkpoints/, and the trained model in model/");
  add_training_options(opts, o);
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"model", "out"})) return 0;
  finish_training_options(vm, o);
  o.record_as = "gqa_uptraining";
  return run_training_command("uptrain", args, vm, o);
}

}  // namespace gqa::cli
