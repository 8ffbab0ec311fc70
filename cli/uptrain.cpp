// gqa uptrain CONVERTED_DIR OUT_DIR --data ...: continues training a converted model on real text
// for a small budget (e.g. --fraction 0.05 of its pretraining tokens) so it recovers MHA quality.
// gqa uptrain MODEL --plan [...]: the memory each process of such a run would hold, from
// config.json alone, and whether it fits the device.
#include <iostream>

#include "cli/training_options.h"
#include "core/files.h"
#include "uptrain/train_plan.h"

namespace gqa::cli {
namespace {

ModelConfig config_at(const std::string& path) {
  return load_config(files::is_directory(path) ? path + "/config.json" : path);
}

// Prints the plan; exit code 0 when it fits, 1 when it does not.
int print_plan(const po::variables_map& vm, const TrainOptions& o) {
  const ModelConfig model = config_at(o.model_dir);
  std::optional<ModelConfig> teacher;
  if (!o.teacher_dir.empty()) teacher = config_at(o.teacher_dir);
  const int nproc = vm["nproc"].as<int>();
  if (nproc < 1) throw InputError("--nproc", "", "must be >= 1");
  const TrainPlanOptions p = plan_options(o, nproc, config_dtype(model.raw).value_or(at::kFloat));
  int64_t memory = 0;
  std::string source;
  if (vm.count("device-memory")) {
    memory = parse_byte_size(vm["device-memory"].as<std::string>(), "--device-memory");
    source = "--device-memory";
  } else {
    if (p.cuda && !at::hasCUDA())
      throw InputError("--device-memory", "",
                       "no CUDA device here: give the memory of the GPU to plan for, e.g. 80GiB");
    const MemoryAvailable available = memory_per_process(at::Device(o.device), nproc);
    memory = available.bytes;
    source = available.source;
  }
  const TrainPlan plan = plan_training(model, teacher ? &*teacher : nullptr, p);
  std::cout << describe_plan(plan, p, memory, source);
  return plan.peak() <= memory ? 0 : 1;
}

}  // namespace

int uptrain(const Args& args) {
  po::options_description opts(
      "gqa uptrain MODEL_DIR OUT_DIR --data PATH... (--steps N | --tokens N | --fraction F | --epochs N) [options]\n"
      "gqa uptrain MODEL_DIR --plan [--nproc N --batch-size B --seq-len T --dtype D --shard-optimizer ...]");
  TrainOptions o;
  opts.add_options()("help,h", "show options")("model", po::value<std::string>(&o.model_dir)->required(),
                                               "model folder (converted by gqa convert, or any supported one)")(
      "out", po::value<std::string>(&o.out_dir), "output folder: logs, checkpoints/, and the trained model in model/")(
      "plan",
      "print the memory per process of this run (from config.json alone; MODEL_DIR may be a config.json) and whether "
      "it fits; exit 1 when it does not")("device-memory", po::value<std::string>(),
                                          "--plan: memory per process to fit, e.g. 80GiB (default: the device's)");
  add_training_options(opts, o);
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"model", "out"})) return 0;
  o.bucket_bytes = bucket_bytes_option(vm);
  if (vm.count("plan")) return print_plan(vm, o);
  if (o.out_dir.empty())
    throw InputError("OUT_DIR", "", "is required: where the logs, checkpoints and trained model go");
  finish_training_options(vm, o);
  o.record_as = "gqa_uptraining";
  return run_training_command("uptrain", args, vm, o);
}

}  // namespace gqa::cli
