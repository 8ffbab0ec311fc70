#include "cli/training_options.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "core/error.h"
#include "uptrain/stop_signals.h"

namespace gqa::cli {
namespace {

// `text` as one shell word.
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && text.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") ==
                                          std::string::npos;
  if (plain) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The command that continues a stopped run: this one with --resume (and the processes it had).
std::string resume_command(const std::string& verb, const Args& args, int world_size) {
  std::string command = command_line(verb, args);
  if (world_size > 1) command += " --nproc " + std::to_string(world_size);
  const bool has_resume = std::find(args.begin(), args.end(), "--resume") != args.end();
  return has_resume ? command : command + " --resume";
}

}  // namespace

std::string command_line(const std::string& verb, const Args& args) {
  std::string command = "gqa " + verb;
  for (const std::string& a : args) command += " " + shell_word(a);
  return command;
}

void add_training_options(po::options_description& opts, TrainOptions& o) {
  po::options_description data("data");
  data.add_options()("data", po::value<std::vector<std::string>>()->multitoken(),
                     "training data: text files/folders, .jsonl(.gz), .h5 token datasets, .bin token files")(
      "valid", po::value<std::vector<std::string>>()->multitoken(),
      "held-out data, evaluated every --eval-every steps and at the end")(
      "format", po::value<std::string>(&o.data.format)->default_value("auto"), "auto | text | jsonl | hdf5 | bin")(
      "text-field", po::value<std::string>(&o.data.text_field)->default_value("text"), "JSONL field of LM text")(
      "source-field", po::value<std::string>(&o.data.source_field)->default_value("document"),
      "JSONL seq2seq source field")("target-field",
                                    po::value<std::string>(&o.data.target_field)->default_value("summary"),
                                    "JSONL seq2seq target field")(
      "hdf5-dataset", po::value<std::string>(&o.data.hdf5_dataset)->default_value("tokens"),
      "dataset of token ids in .h5 files")("bin-dtype",
                                           po::value<std::string>(&o.data.bin_dtype)->default_value("uint16"),
                                           "uint16 | uint32 for .bin token files")(
      "cache-dir", po::value<std::string>(&o.data.cache_dir), "token cache (default $GQA_CACHE_DIR or ~/.cache/gqa)")(
      "task", po::value<std::string>(&o.task)->default_value("auto"),
      "lm | seq2seq (auto: seq2seq for T5 with JSONL pairs)")(
      "seq-len", po::value<int64_t>(&o.seq_len)->default_value(256), "tokens per training sequence")(
      "max-source-len", po::value<int64_t>(&o.max_source_len)->default_value(512), "seq2seq source truncation")(
      "max-target-len", po::value<int64_t>(&o.max_target_len)->default_value(128), "seq2seq target truncation");
  po::options_description budget("budget (one of)");
  budget.add_options()("steps", po::value<int64_t>(&o.steps)->default_value(0), "optimizer steps")(
      "tokens", po::value<int64_t>(&o.tokens)->default_value(0), "training tokens")(
      "epochs", po::value<int64_t>(&o.epochs)->default_value(0), "passes over the data")(
      "fraction", po::value<double>(&o.fraction)->default_value(0),
      "fraction of the pretraining tokens (GQA paper: 0.05)")(
      "pretrain-tokens", po::value<int64_t>(&o.pretrain_tokens)->default_value(0),
      "pretraining tokens for --fraction (default: gqa_training.tokens in config.json)");
  po::options_description optim("optimizer");
  optim.add_options()("batch-size,b", po::value<int64_t>(&o.batch_size)->default_value(8),
                      "sequences per micro-batch and process")(
      "grad-accum", po::value<int64_t>(&o.grad_accum)->default_value(1), "micro-batches per optimizer step")(
      "lr", po::value<double>(&o.adam.lr)->default_value(1e-3), "peak learning rate")(
      "min-lr-ratio", po::value<double>(&o.min_lr_ratio)->default_value(0.0), "final lr as a fraction of --lr")(
      "warmup", po::value<int64_t>(&o.warmup_steps)->default_value(-1), "warmup steps (-1: 5% of the steps)")(
      "decay", po::value<std::string>(&o.decay)->default_value("linear"), "linear | cosine | constant")(
      "weight-decay", po::value<double>(&o.adam.weight_decay)->default_value(0.01),
      "AdamW decoupled decay (matrices only)")("beta1", po::value<double>(&o.adam.beta1)->default_value(0.9),
                                               "AdamW beta1")(
      "beta2", po::value<double>(&o.adam.beta2)->default_value(0.999), "AdamW beta2")(
      "clip", po::value<double>(&o.clip)->default_value(1.0), "gradient clipping by global norm (0: off)")(
      "scalar-lr", po::value<double>(&o.scalar_lr)->default_value(0), "lr of WGQA scalars (0: --lr)")(
      "regroup-every", po::value<int64_t>(&o.regroup_every)->default_value(0),
      "SimGQA: regroup the heads of weighted blocks by similarity every N steps (convert with --strategy weighted)")(
      "no-fold", "keep WGQA scalars in the output instead of folding them into plain GQA weights")(
      "teacher", po::value<std::string>(&o.teacher_dir), "MHA teacher folder for distillation")(
      "distill-weight", po::value<double>(&o.distill_weight)->default_value(0.5), "weight of the KL term")(
      "temperature", po::value<double>(&o.temperature)->default_value(2.0), "distillation temperature")(
      "seed", po::value<uint64_t>(&o.seed)->default_value(0), "data order seed");
  po::options_description run("run");
  run.add_options()("eval-every", po::value<int64_t>(&o.eval_every)->default_value(0),
                    "validate every N steps (0: at the end)")(
      "eval-sequences", po::value<int64_t>(&o.eval_sequences)->default_value(64), "held-out sequences per evaluation")(
      "save-every", po::value<int64_t>(&o.save_every)->default_value(0), "checkpoint every N steps (0: at the end)")(
      "keep-checkpoints", po::value<int64_t>(&o.keep_checkpoints)->default_value(2), "step checkpoints kept")(
      "log-every", po::value<int64_t>(&o.log_every)->default_value(1), "log every N steps")(
      "resume", po::bool_switch(&o.resume), "continue from the last checkpoint in OUT_DIR")(
      "force", po::bool_switch(&o.force), "start over in an OUT_DIR that holds a run")(
      "device", po::value<std::string>(&o.device)->default_value("cpu"), "cpu | cuda | cuda:N")(
      "dtype", po::value<std::string>(&o.dtype)->default_value("auto"),
      "auto (the checkpoint's own; bf16 on CUDA for f32) | f32 | bf16 (bf16 weights, f32 master copies) | f16 "
      "(autocast, f32 weights)")(
      "shard-optimizer", po::bool_switch(&o.shard_optimizer),
      "ZeRO-2: each process keeps the optimizer state and gradients of its slice of the parameters only")(
      "checkpoint-activations", po::bool_switch(&o.checkpoint_activations),
      "recompute each block's activations in backward instead of storing them")(
      "bucket-mb", po::value<double>()->default_value(25),
      "size of the buckets gradients travel in between processes, MiB")(
      "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0: LibTorch default)")(
      "quiet", "no progress bar")("nproc", po::value<int>()->default_value(1),
                                  "data-parallel processes on this machine (c10d gloo on CPU, nccl on CUDA)");
  opts.add(data).add(budget).add(optim).add(run);
}

std::size_t bucket_bytes_option(const po::variables_map& vm) {
  const double bucket_mb = vm["bucket-mb"].as<double>();
  if (!(bucket_mb > 0 && bucket_mb <= 1 << 20)) throw InputError("--bucket-mb", "", "expected a size in MiB above 0");
  return std::size_t(bucket_mb * double(1 << 20));
}

void finish_training_options(const po::variables_map& vm, TrainOptions& o) {
  if (!vm.count("data")) throw InputError("--data", "", "is required: the training data");
  o.data.paths = vm["data"].as<std::vector<std::string>>();
  if (vm.count("valid")) {
    DataOptions v = o.data;
    v.paths = vm["valid"].as<std::vector<std::string>>();
    o.valid = v;
  }
  o.fold = !vm.count("no-fold");
  o.bucket_bytes = bucket_bytes_option(vm);
  o.progress = !vm.count("quiet");
}

int run_training_command(const std::string& verb, const Args& args, const po::variables_map& vm,
                         const TrainOptions& o) {
  const int nproc = vm["nproc"].as<int>();
  if (nproc < 1) throw InputError("--nproc", "", "must be >= 1");
  const DistributedEnv env = DistributedEnv::from_environment();
  if (nproc > 1 && env.world_size == 1) {  // launcher: the same command, N times, without --nproc
    std::vector<std::string> argv{"/proc/self/exe", verb};
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--nproc") {
        ++i;
        continue;
      }
      if (args[i].rfind("--nproc=", 0) == 0) continue;
      argv.push_back(args[i]);
    }
    return launch_local_processes(nproc, argv);
  }
  TrainOptions local = o;
  // One GPU per process on a machine: plain "cuda" means this process's LOCAL_RANK device.
  if (env.world_size > 1 && local.device == "cuda") local.device = "cuda:" + std::to_string(env.local_rank);
  std::unique_ptr<Communicator> comm = env.world_size > 1
                                           ? join_process_group(env, at::Device(local.device), 120, local.bucket_bytes)
                                           : single_process();
  if (comm->rank() != 0) local.progress = false;
  const TrainSummary s = run_training(local, *comm, std::cout);
  if (s.stopped_by) {
    if (comm->rank() == 0) {
      std::cout << verb << ": stopped by " << StopSignals::name(s.stopped_by) << " after step " << s.steps
                << "; checkpoint " << s.checkpoint << "\ncontinue with: " << resume_command(verb, args, env.world_size)
                << std::endl;
    }
    return 128 + s.stopped_by;
  }
  if (comm->rank() == 0) {
    std::cout << verb << ": " << s.steps << " steps, " << s.tokens << " tokens, last train loss " << s.last_loss;
    if (s.valid_loss) std::cout << ", valid loss " << *s.valid_loss;
    std::cout << "\nmodel: " << s.model_dir << "\n";
  }
  return 0;
}

}  // namespace gqa::cli
