// gqa train OUT_DIR --config SHAPE.json --tokenizer DIR --data ...: trains a fresh model of any
// family and attention layout (MHA, GQA, uneven groups, smaller KV head dims) with the same loop
// as uptrain. This is how the project makes its own pretrained MHA checkpoints from the shared
// corpus; the output config records the pretraining tokens that uptrain --fraction reads.
#include <fstream>
#include <iostream>

#include "cli/training_options.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/files.h"
#include "core/init_model.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa::cli {
namespace {

// Parameters of the reference a GQA shape is matched to: a model folder, or a shape JSON.
int64_t reference_parameters(const std::string& ref, const ModelShape& like) {
  if (files::is_directory(ref)) return Checkpoint(ref).parameter_count();
  ModelShape r = parse_model_shape(read_json_file(ref), ref);
  if (r.vocab_size == 0) r.vocab_size = like.vocab_size;
  return parameter_count(r);
}

}  // namespace

int train(const Args& args) {
  po::options_description opts(
      "gqa train OUT_DIR --config SHAPE.json --tokenizer DIR --data PATH... (--steps N | --tokens N) [options]");
  TrainOptions o;
  std::string config_path, tokenizer_dir, match_ref;
  uint64_t init_seed = 0;
  opts.add_options()("help,h", "show options")("out", po::value<std::string>(&o.out_dir)->required(),
                                               "output folder: init/, logs, checkpoints/, and the model in model/")(
      "config", po::value<std::string>(&config_path)->required(),
      "model shape JSON: family, layers, d_model, heads, kv_heads | group_map, qk_head_dim, v_head_dim, ffn_dim, "
      "max_positions")("tokenizer", po::value<std::string>(&tokenizer_dir)->required(),
                       "folder with the tokenizer files (its size sets vocab_size)")(
      "match-params", po::value<std::string>(&match_ref),
      "set the FFN width so the parameter count matches this model folder or shape JSON")(
      "init-seed", po::value<uint64_t>(&init_seed)->default_value(0), "seed of the random initialisation");
  add_training_options(opts, o);
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"out"})) return 0;
  finish_training_options(vm, o);

  ModelShape shape = parse_model_shape(read_json_file(config_path), config_path);
  const auto tokenizer = load_tokenizer(tokenizer_dir);
  if (shape.vocab_size == 0) shape.vocab_size = tokenizer->vocab_size();
  if (shape.vocab_size < tokenizer->vocab_size())
    throw InputError(config_path, "vocab_size",
                     "is smaller than the tokenizer's " + std::to_string(tokenizer->vocab_size()));
  if (!shape.eos_token_id && tokenizer->eos_id()) shape.eos_token_id = tokenizer->eos_id();
  if (!shape.bos_token_id && tokenizer->bos_id()) shape.bos_token_id = tokenizer->bos_id();
  if (!shape.pad_token_id && tokenizer->pad_id()) shape.pad_token_id = tokenizer->pad_id();
  if (!match_ref.empty()) {
    const int64_t target = reference_parameters(match_ref, shape);
    shape.ffn_dim = ffn_dim_matching(shape, target);
    std::cout << "train: FFN width " << shape.ffn_dim << " gives " << parameter_count(shape)
              << " parameters (reference " << target << ")\n";
  }

  // The fresh model is a model folder like any other (kept for a resumed run to start from).
  const DistributedEnv env = DistributedEnv::from_environment();
  const std::string init_dir = o.out_dir + "/init";
  const bool created_out_dir = !files::exists(o.out_dir);
  if (env.rank == 0 && (!files::exists(init_dir) || !o.resume)) {
    if (!files::is_directory(o.out_dir) && !files::make_directories(o.out_dir))
      throw InputError(o.out_dir, "", "cannot create the output folder");
    write_initial_checkpoint(shape, init_dir, init_seed, /*overwrite=*/true);
    for (const std::string& f : passthrough_files()) {
      if (!files::exists(tokenizer_dir + "/" + f) || f == "config.json") continue;
      const std::string why = files::copy_file(tokenizer_dir + "/" + f, init_dir + "/" + f);
      if (!why.empty()) throw InputError(tokenizer_dir + "/" + f, "", "copy failed: " + why);
    }
  }
  o.model_dir = init_dir;
  o.record_as = "gqa_training";
  try {
    return run_training_command("train", args, vm, o);
  } catch (const InputError&) {
    // Bad data or options found before the first checkpoint: leave no output folder behind (the
    // fresh model in init/ was only written for this run). Checkpoints, once there, are kept.
    if (env.rank == 0 && created_out_dir && !files::exists(o.out_dir + "/checkpoints")) files::remove_all(o.out_dir);
    throw;
  }
}

}  // namespace gqa::cli
