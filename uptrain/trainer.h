// The training loop behind `gqa uptrain` and `gqa train`: a model folder in, a model folder out.
// AdamW with warmup + decay, clipping, accumulation, bf16 autocast on CUDA (fp32 on CPU), WGQA
// scalars with their own lr (folded at the end), optional distillation from an MHA teacher,
// atomic step checkpoints with exact resume, data parallel over c10d, logs and a progress bar.
#pragma once
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "uptrain/data.h"
#include "uptrain/distributed.h"
#include "uptrain/optimizer.h"
#include "uptrain/train_plan.h"

namespace gqa {

struct TrainOptions {
  std::string model_dir;  // the model to train (a converted folder, or a fresh one from gqa train)
  std::string out_dir;    // logs, checkpoints/, and the result in model/
  DataOptions data;
  std::optional<DataOptions> valid;
  std::string task = "auto";  // "lm", "seq2seq" (T5 + document/summary JSONL); auto picks

  // Shapes of a step: micro-batches of batch_size sequences of seq_len tokens, grad_accum of them
  // per process, on every process.
  int64_t seq_len = 256, batch_size = 8, grad_accum = 1;
  int64_t max_source_len = 512, max_target_len = 128;  // seq2seq truncation

  // Budget: the first of steps / tokens / fraction × pretraining tokens that is given.
  int64_t steps = 0, tokens = 0;
  double fraction = 0;
  int64_t pretrain_tokens = 0;  // 0: read gqa_training.tokens from the model's config.json

  AdamWOptions adam{1e-3, 0.9, 0.999, 1e-8, 0.01};
  int64_t warmup_steps = -1;     // -1: 5% of the steps
  std::string decay = "linear";  // linear, cosine, constant
  double min_lr_ratio = 0.0;
  double clip = 1.0;
  double scalar_lr = 0;       // WGQA scalars; 0: the same as adam.lr
  bool fold = true;           // fold WGQA scalars into plain GQA weights at the end
  int64_t regroup_every = 0;  // SimGQA: regroup weighted blocks by head similarity every N steps

  // Distillation from an MHA teacher: loss = (1 - w) * LM + w * T^2 * KL(teacher || student).
  std::string teacher_dir;
  double distill_weight = 0.5, temperature = 2.0;

  int64_t eval_every = 0;  // 0: at the end only
  int64_t eval_sequences = 64;
  int64_t save_every = 0;  // 0: at the end only
  int64_t keep_checkpoints = 2;
  int64_t log_every = 1;
  bool resume = false;
  bool force = false;  // replace an existing OUT_DIR that holds no checkpoint
  uint64_t seed = 0;
  std::string device = "cpu";
  // Compute dtype: auto (the checkpoint's own; bf16 for float32 checkpoints on CUDA), f32, bf16,
  // f16. bf16 asked for (or auto on CUDA for a bf16 checkpoint) holds the weights in bf16 with
  // float32 master copies in the optimizer; otherwise the weights stay float32 and the forward
  // runs under autocast (f16 always: without loss scaling its gradients would underflow).
  std::string dtype = "auto";
  // ZeRO stage 2 (sharded_adamw.h): each process keeps the optimizer state and gradient sum of
  // its slice of the parameters only.
  bool shard_optimizer = false;
  // Recompute each block's activations in backward instead of storing them.
  bool checkpoint_activations = false;
  // Gradients travel in buckets of about this many bytes (all-reduce, reduce-scatter, all-gather).
  std::size_t bucket_bytes = kDefaultBucketBytes;
  int threads = 0;  // 0: LibTorch's default
  bool progress = true;
  int64_t epochs = 0;  // budget in passes over the data (seq2seq fine-tuning)
  // The output config.json records the run under this key: gqa train writes "gqa_training"
  // (whose tokens --fraction reads later), uptrain "gqa_uptraining".
  std::string record_as = "gqa_uptraining";
};

struct TrainSummary {
  int64_t steps = 0, tokens = 0;
  double last_loss = 0;
  std::optional<double> valid_loss;
  std::string model_dir;  // where the trained model is
  std::string log_path;   // the run's train_log.jsonl (read_train_log reads it)
  // SIGTERM / SIGINT (stop_signals.h): the run stopped early after step `steps`, whose
  // checkpoint is `checkpoint`; the caller exits with 128 + stopped_by.
  int stopped_by = 0;
  std::string checkpoint;
};

// What --plan counts for this run on `nproc` processes, for a checkpoint whose own dtype (what
// --dtype auto resolves to) is `checkpoint_dtype`.
TrainPlanOptions plan_options(const TrainOptions& o, int nproc, at::ScalarType checkpoint_dtype);

// Throws InputError on bad input (data, budget, resume mismatch, NaN loss), and before loading
// anything when the run's plan (train_plan.h) does not fit the memory this process can have.
TrainSummary run_training(const TrainOptions& opts, Communicator& comm, std::ostream& out);

// The summary of a run that completed in opts.out_dir earlier (its trained model is written),
// read back from the record in the model's config.json (opts.record_as); nullopt when no
// completed run is there. Callers that resume a larger job use it to skip a finished training.
std::optional<TrainSummary> completed_run(const TrainOptions& opts);

}  // namespace gqa
