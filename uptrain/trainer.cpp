#include "uptrain/trainer.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "convert/converter.h"
#include "core/arch.h"
#include "core/config.h"  // read_json_file
#include "core/error.h"
#include "core/files.h"
#include "core/format.h"
#include "core/model/model.h"
#include "core/tokenizers/tokenizer.h"
#include "uptrain/model_io.h"
#include "uptrain/regroup.h"
#include "uptrain/sharded_adamw.h"
#include "uptrain/stop_signals.h"
#include "uptrain/train_log.h"
#include "uptrain/train_plan.h"

namespace gqa {
namespace {

using json = nlohmann::json;
constexpr int64_t kIgnore = -100;  // label of positions without a target (padding)

// One micro-batch: decoder inputs and labels [B, T]; for T5 the encoder input and its mask.
struct Batch {
  at::Tensor input, labels, source, source_mask;
  int64_t tokens = 0;  // tokens the step consumed (inputs and sources), for throughput and budgets
};

// Turns example indices into batches; one implementation per kind of data.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t count() const = 0;
  virtual Batch make(const int64_t* indices, int64_t n) const = 0;
  virtual int64_t tokens_per_example() const = 0;  // for token budgets (an average for seq2seq)
};

// Fixed windows of a token stream. Decoder-only models predict every next token; T5 reads the
// first half of a window and predicts the second (a prefix-LM objective on plain text).
class PackedSource : public BatchSource {
 public:
  PackedSource(PackedSequences seqs, const ModelConfig& c, at::Device device)
      : seqs_(std::move(seqs)),
        t5_(c.is_encoder_decoder()),
        device_(device),
        decoder_start_(c.decoder_start_token_id.value_or(c.pad_token_id.value_or(0))) {}
  int64_t count() const override { return seqs_.count(); }
  int64_t tokens_per_example() const override { return seqs_.seq_len(); }
  Batch make(const int64_t* indices, int64_t n) const override {
    const int64_t L = seqs_.seq_len() + 1;
    at::Tensor ids32 = at::empty({n, L}, at::kInt);
    for (int64_t i = 0; i < n; ++i) seqs_.sequence(indices[i], ids32.data_ptr<int32_t>() + i * L);
    at::Tensor ids = ids32.to(at::kLong);
    Batch b;
    b.tokens = n * seqs_.seq_len();
    if (!t5_) {
      b.input = ids.narrow(1, 0, L - 1).to(device_);
      b.labels = ids.narrow(1, 1, L - 1).to(device_);
      return b;
    }
    const int64_t src = (L - 1) / 2, tgt = L - src;
    b.source = ids.narrow(1, 0, src).to(device_);
    b.source_mask = at::ones_like(b.source);
    b.labels = ids.narrow(1, src, tgt).to(device_);
    b.input = at::cat({at::full({n, 1}, decoder_start_, ids.options()), ids.narrow(1, src, tgt - 1)}, 1).to(device_);
    return b;
  }
  const PackedSequences& sequences() const { return seqs_; }

 private:
  PackedSequences seqs_;
  bool t5_;
  at::Device device_;
  int64_t decoder_start_;
};

// document -> summary pairs for T5: sources right-padded with their mask, labels padded with kIgnore.
class Seq2SeqSource : public BatchSource {
 public:
  Seq2SeqSource(std::vector<Seq2SeqExample> ex, const ModelConfig& c, at::Device device)
      : ex_(std::move(ex)),
        device_(device),
        pad_(c.pad_token_id.value_or(0)),
        decoder_start_(c.decoder_start_token_id.value_or(pad_)) {
    for (const auto& e : ex_) total_tokens_ += int64_t(e.source.size() + e.target.size());
  }
  int64_t count() const override { return int64_t(ex_.size()); }
  int64_t tokens_per_example() const override {
    return std::max<int64_t>(1, total_tokens_ / std::max<int64_t>(1, count()));
  }
  Batch make(const int64_t* indices, int64_t n) const override {
    int64_t S = 1, T = 1;
    for (int64_t i = 0; i < n; ++i) {
      S = std::max<int64_t>(S, int64_t(ex_[indices[i]].source.size()));
      T = std::max<int64_t>(T, int64_t(ex_[indices[i]].target.size()));
    }
    at::Tensor src = at::full({n, S}, pad_, at::kLong), mask = at::zeros({n, S}, at::kLong);
    at::Tensor labels = at::full({n, T}, kIgnore, at::kLong), input = at::full({n, T}, pad_, at::kLong);
    Batch b;
    for (int64_t i = 0; i < n; ++i) {
      const Seq2SeqExample& e = ex_[indices[i]];
      for (size_t j = 0; j < e.source.size(); ++j) {
        src[i][int64_t(j)] = int64_t(e.source[j]);
        mask[i][int64_t(j)] = 1;
      }
      for (size_t j = 0; j < e.target.size(); ++j) {
        labels[i][int64_t(j)] = int64_t(e.target[j]);
        input[i][int64_t(j)] = j == 0 ? decoder_start_ : int64_t(e.target[j - 1]);
      }
      b.tokens += int64_t(e.source.size() + e.target.size());
    }
    b.source = src.to(device_);
    b.source_mask = mask.to(device_);
    b.labels = labels.to(device_);
    b.input = input.to(device_);
    return b;
  }

 private:
  std::vector<Seq2SeqExample> ex_;
  at::Device device_;
  int64_t pad_, decoder_start_, total_tokens_ = 0;
};

at::Tensor logits_of(const Model& m, const Batch& b) {
  if (!m.is_encoder_decoder()) return m.forward(b.input, at::Tensor());
  const Memory memory = m.encode(b.source, b.source_mask);
  return m.forward(b.input, at::ones_like(b.input), nullptr, &memory);
}

// Mean token cross-entropy over labelled positions, computed in float32.
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat), labels.reshape({-1}), {},
                                at::Reduction::Mean, kIgnore);
}

// T^2 * KL(teacher || student) at temperature T, averaged over labelled positions (Hinton et al.).
at::Tensor distill_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels, double T) {
  at::Tensor s = at::log_softmax(student.to(at::kFloat) / T, -1);
  at::Tensor t = at::log_softmax(teacher.to(at::kFloat) / T, -1);
  at::Tensor kl = (t.exp() * (t - s)).sum(-1);  // [B, T]
  at::Tensor keep = (labels != kIgnore).to(at::kFloat);
  return (kl * keep).sum() / keep.sum().clamp_min(1.0) * (T * T);
}

// Autocast of the forward pass to the run's compute dtype (--dtype bf16/f16); the weights and the
// optimizer stay float32, so updates smaller than a bf16 step are not lost.
struct AutocastGuard {
  at::DeviceType device;
  bool on;
  AutocastGuard(at::DeviceType d, at::ScalarType dtype) : device(d), on(dtype != at::kFloat) {
    if (on) {
      at::autocast::set_autocast_dtype(device, dtype);
      at::autocast::set_autocast_enabled(device, true);
    }
  }
  ~AutocastGuard() {
    if (on) {
      at::autocast::set_autocast_enabled(device, false);
      at::autocast::clear_cache();
    }
  }
};

// Where a completed run leaves its trained model (TrainSummary::model_dir).
std::string trained_model_dir(const std::string& out_dir) { return out_dir + "/model"; }

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// Complete step checkpoints (unfinished ones are still named step-N.tmp-XXXXXX), by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!files::is_directory(dir)) return out;
  for (const std::string& name : files::list_directory(dir)) {
    long long step = 0;
    char tail = 0;
    if (name.size() == 13 && std::sscanf(name.c_str(), "step-%8lld%c", &step, &tail) == 1 &&
        files::exists(dir + "/" + name + "/trainer_state.json"))
      out.emplace_back(step, dir + "/" + name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void write_optimizer_state(const AdamW& opt, const std::string& path) {
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, t] : opt.state_tensors()) {
    at::Tensor host = t.detach().to(at::kCPU, at::kFloat).contiguous();
    TensorToWrite w;
    w.name = name;
    w.dtype = DType::F32;
    w.shape = host.sizes().vec();
    w.nbytes = size_t(host.numel()) * 4;
    w.fill = [host](uint8_t* dst) { std::memcpy(dst, host.data_ptr<float>(), host.numel() * 4); };
    tensors.push_back(std::move(w));
  }
  write_safetensors(path, std::move(tensors), {{"format", "pt"}});
}

std::map<std::string, at::Tensor> read_optimizer_state(const std::string& path, at::Device device) {
  SafetensorsFile f(path);
  std::map<std::string, at::Tensor> out;
  for (const std::string& name : f.names()) {
    const TensorView& v = f.tensor(name);
    if (v.dtype != DType::F32) throw InputError(path, name, "expected F32 optimizer state");
    out[name] = at::from_blob(const_cast<uint8_t*>(v.data), v.shape, at::kFloat).clone().to(device);
  }
  return out;
}

// Summary of the WGQA scalars (mean/std/min/max over every weighted block) for the logs.
std::map<std::string, double> scalar_stats(const std::vector<ModelParameter>& params) {
  std::map<std::string, double> out;
  for (const char* which : {"k", "v"}) {
    std::vector<at::Tensor> all;
    for (const ModelParameter& p : params) {
      const bool is_k = p.role == Role::AttnKScale || p.role == Role::CrossKScale;
      const bool is_v = p.role == Role::AttnVScale || p.role == Role::CrossVScale;
      if ((which[0] == 'k' && is_k) || (which[0] == 'v' && is_v))
        all.push_back(p.tensor.detach().to(at::kCPU, at::kFloat));
    }
    if (all.empty()) continue;
    at::Tensor t = at::cat(all);
    const std::string w = which;
    out[w + "_mean"] = t.mean().item<double>();
    out[w + "_std"] = t.numel() > 1 ? t.std().item<double>() : 0.0;
    out[w + "_min"] = t.min().item<double>();
    out[w + "_max"] = t.max().item<double>();
  }
  return out;
}

bool is_scale_role(Role r) {
  return r == Role::AttnKScale || r == Role::AttnVScale || r == Role::CrossKScale || r == Role::CrossVScale;
}

// Decoupled weight decay applies to matrices only: not to norms, biases, WGQA scalars, and not
// to embeddings' 1-D relatives (T5 relative bias is a table: it decays like a matrix).
bool decays(const ModelParameter& p) { return p.tensor.dim() >= 2; }

// The options that decide a run's trajectory: a resumed run must match them exactly.
json trajectory_config(const TrainOptions& o, int world_size, int64_t total_steps, const std::string& task) {
  json data = json::array();
  for (const auto& p : o.data.paths) data.push_back(files::absolute(p));
  return {{"model", files::absolute(o.model_dir)},
          {"data", data},
          {"task", task},
          {"seq_len", o.seq_len},
          {"batch_size", o.batch_size},
          {"grad_accum", o.grad_accum},
          {"world_size", world_size},
          {"global_batch", o.batch_size * o.grad_accum * world_size},
          {"total_steps", total_steps},
          {"lr", o.adam.lr},
          {"beta1", o.adam.beta1},
          {"beta2", o.adam.beta2},
          {"eps", o.adam.eps},
          {"weight_decay", o.adam.weight_decay},
          {"warmup_steps", o.warmup_steps},
          {"decay", o.decay},
          {"min_lr_ratio", o.min_lr_ratio},
          {"clip", o.clip},
          {"scalar_lr", o.scalar_lr},
          {"teacher", o.teacher_dir.empty() ? "" : files::absolute(o.teacher_dir)},
          {"distill_weight", o.distill_weight},
          {"temperature", o.temperature},
          {"seed", o.seed},
          {"regroup_every", o.regroup_every},
          {"dtype", o.dtype}};
}

// Keys of the trajectory a resumed run may change: the processes and their accumulation, as long
// as global_batch (which fixes the data order and the step) stays the same.
bool may_change_on_resume(const std::string& key) { return key == "world_size" || key == "grad_accum"; }

// The optimizer files of a checkpoint folder written with master weights (sharded_adamw.h), in
// rank order; empty for a checkpoint of the plain optimizer. Throws when some are missing.
std::vector<std::string> shard_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const std::string& name : files::list_directory(dir))
    if (ShardedAdamW::is_shard_file(name)) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  for (const std::string& name : names) paths.push_back(dir + "/" + name);
  if (!names.empty()) {
    const int world = std::atoi(names.front().substr(names.front().find("-of-") + 4).c_str());
    if (int(names.size()) != world || names.back() != ShardedAdamW::file_name(world - 1, world))
      throw InputError(dir, "optimizer-rank-*",
                       "holds " + std::to_string(names.size()) + " of the " + std::to_string(world) +
                           " optimizer shard files its run wrote");
  }
  return paths;
}

// Refuses a run whose plan does not fit before anything is loaded: one line with the need, what
// is available and the first change that would fit. Processes on one host share its memory.
void require_training_memory(const TrainOptions& o, const ModelConfig& cfg, int nproc, at::ScalarType checkpoint_dtype,
                             const at::Device& device) {
  std::optional<ModelConfig> teacher;
  if (!o.teacher_dir.empty()) teacher = load_config(o.teacher_dir + "/config.json");
  auto need_of = [&](const TrainOptions& variant) {
    const TrainPlan plan =
        plan_training(cfg, teacher ? &*teacher : nullptr, plan_options(variant, nproc, checkpoint_dtype));
    return plan.peak() - plan.runtime;  // the process is running already: its baseline is in use
  };
  int local = 1;  // processes on this host (set by --nproc and torchrun)
  if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(v));
  const MemoryAvailable have = memory_per_process(device, local);
  const int64_t need = need_of(o);
  if (need <= have.bytes) return;
  std::vector<std::pair<std::string, TrainOptions>> alternatives;
  TrainOptions v = o;
  if (!v.checkpoint_activations) {
    v.checkpoint_activations = true;
    alternatives.push_back({"--checkpoint-activations", v});
  }
  if (nproc > 1 && !v.shard_optimizer) {
    v.shard_optimizer = true;
    alternatives.push_back({"--checkpoint-activations --shard-optimizer", v});
  }
  for (int64_t b = v.batch_size / 2; b >= 1; b /= 2) {
    v.batch_size = b;
    alternatives.push_back(
        {"those and --batch-size " + std::to_string(b) + " (with --grad-accum for the same batch)", v});
  }
  std::string advice = "; nothing smaller was found to suggest";
  for (const auto& [option, alt] : alternatives)
    if (const int64_t alt_need = need_of(alt); alt_need <= have.bytes) {
      advice = "; " + option + " would need about " + format_bytes(double(alt_need));
      break;
    }
  throw InputError(o.model_dir, "",
                   "training needs about " + format_bytes(double(need)) +
                       " per process (gqa uptrain --plan has the parts), only " + format_bytes(double(have.bytes)) +
                       " available (" + have.source + ")" + advice);
}

class Trainer {
 public:
  Trainer(const TrainOptions& o, Communicator& comm, std::ostream& out) : o_(o), comm_(comm), out_(out) {}
  TrainSummary run();

 private:
  void prepare_output();
  void load_data(const ModelConfig& cfg);
  int64_t plan_steps(const ModelConfig& cfg) const;
  void build_optimizer();
  double train_step(const std::vector<int64_t>& order);
  std::optional<double> evaluate();
  void save_checkpoint(int64_t step);
  void resume_from(const std::string& dir);
  void save_result();
  void regroup();
  void say(const std::string& line);
  void log_optimizer_memory();

  const TrainOptions& o_;
  Communicator& comm_;
  std::ostream& out_;
  at::Device device_ = at::kCPU;
  std::unique_ptr<Checkpoint> source_;  // the folder the current weights came from (names, extra tensors)
  std::unique_ptr<Model> model_, teacher_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<BatchSource> train_, valid_;
  std::unique_ptr<BatchOrder> order_;
  std::unique_ptr<AdamW> opt_;          // float32 weights, not sharded: the reference optimizer
  std::unique_ptr<ShardedAdamW> zero_;  // master weights (bf16 weights) or --shard-optimizer
  at::ScalarType weights_dtype_ = at::kFloat;
  std::unique_ptr<TrainLog> log_;
  std::unique_ptr<ProgressBar> bar_;
  std::vector<at::Tensor> params_;
  Schedule schedule_;
  std::string task_;
  json run_config_;
  json model_config_;  // config.json of the weights as they are now (layouts change when regrouping)
  int64_t step_ = 0, tokens_ = 0, total_steps_ = 0;
  double last_loss_ = 0;
  int stop_signal_ = 0;  // a signal some process received before the current step's all-reduce
  std::optional<double> valid_loss_;
  at::ScalarType compute_dtype_ = at::kFloat;  // autocast dtype of the forward (float32: none)
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();  // this process's start
};

// The bytes of optimizer state each process holds, counted from its tensors (the figure --plan
// predicts), into the log as optimizer_bytes_rank_R.
void Trainer::log_optimizer_memory() {
  const int world = comm_.world_size();
  std::vector<double> held(size_t(world), 0.0);
  held[size_t(comm_.rank())] = double(zero_ ? zero_->held_bytes() : opt_->held_bytes());
  if (world > 1) held = comm_.all_reduce_sum(held);
  if (comm_.rank() != 0) return;
  std::map<std::string, double> record;
  for (int r = 0; r < world; ++r) record["optimizer_bytes_rank_" + std::to_string(r)] = held[size_t(r)];
  log_->record("memory", step_, record);
  say("optimizer state: " + format_bytes(held[0]) + " per process" +
      (zero_ && zero_->sharded() ? " (ZeRO-2 over " + std::to_string(world) + ")"
       : zero_                   ? " (with float32 master weights)"
                                 : ""));
}

void Trainer::say(const std::string& line) {
  if (comm_.rank() != 0) return;
  if (bar_)
    bar_->message(line);
  else
    out_ << line << "\n";
}

void Trainer::prepare_output() {
  const std::string ckpts = o_.out_dir + "/checkpoints";
  const bool has_checkpoints = !list_checkpoints(ckpts).empty();
  if (comm_.rank() == 0) {
    if (has_checkpoints && !o_.resume && !o_.force)
      throw InputError(o_.out_dir, "checkpoints",
                       "holds a run already: pass --resume to continue it or --force to start over");
    if (o_.force && !o_.resume)
      for (const char* f : {"checkpoints", "model", "model-weighted", "train_log.jsonl", "train_log.h5"})
        files::remove_all(o_.out_dir + "/" + f);
    if (!files::is_directory(o_.out_dir) && !files::make_directories(o_.out_dir))
      throw InputError(o_.out_dir, "", "cannot create the output folder");
    if (!files::is_directory(ckpts) && !files::make_directories(ckpts))
      throw InputError(ckpts, "", "cannot create the checkpoint folder");
    // Folders a killed run was still writing (step-N.tmp-XXXXXX, step-N.shards) never became checkpoints.
    for (const std::string& name : files::list_directory(ckpts))
      if (name.find(".tmp-") != std::string::npos || name.find(".shards") != std::string::npos)
        files::remove_all(ckpts + "/" + name);
  }
  comm_.barrier();
}

void Trainer::load_data(const ModelConfig& cfg) {
  DataOptions data = o_.data;
  data.vocab_size = cfg.vocab_size;
  const bool jsonl_pairs =
      o_.task == "seq2seq" || (o_.task == "auto" && cfg.is_encoder_decoder() && data_is_all_jsonl(data));
  task_ = jsonl_pairs ? "seq2seq" : "lm";
  if (task_ == "seq2seq" && !cfg.is_encoder_decoder())
    throw InputError(cfg.path, "model_type", "seq2seq data needs an encoder-decoder model (t5)");
  const bool needs_tokenizer = data_needs_tokenizer(data) || (o_.valid && data_needs_tokenizer(*o_.valid));
  if (needs_tokenizer || task_ == "seq2seq") tokenizer_ = load_tokenizer(o_.model_dir);
  const int64_t eos = tokenizer_ && tokenizer_->eos_id() ? *tokenizer_->eos_id() : cfg.eos_token_id.value_or(-1);
  // Rank 0 fills the token cache first; the others then read it.
  auto make = [&](const DataOptions& d) -> std::unique_ptr<BatchSource> {
    if (task_ == "seq2seq")
      return std::make_unique<Seq2SeqSource>(load_seq2seq(d, *tokenizer_, o_.max_source_len, o_.max_target_len), cfg,
                                             device_);
    if (cfg.max_positions > 0 && o_.seq_len > cfg.max_positions)
      throw InputError(cfg.path, "max_position_embeddings",
                       "--seq-len " + std::to_string(o_.seq_len) + " is beyond the model's " +
                           std::to_string(cfg.max_positions) + " positions");
    return std::make_unique<PackedSource>(PackedSequences(load_token_stream(d, tokenizer_.get(), eos), o_.seq_len), cfg,
                                          device_);
  };
  for (int pass = 0; pass < 2; ++pass) {
    if ((pass == 0) == (comm_.rank() == 0)) {
      train_ = make(data);
      if (o_.valid) {
        DataOptions v = *o_.valid;
        v.vocab_size = cfg.vocab_size;
        valid_ = make(v);
      }
    }
    comm_.barrier();
  }
  if (auto* p = dynamic_cast<PackedSource*>(train_.get())) say("train data: " + p->sequences().stream().description());
}

int64_t Trainer::plan_steps(const ModelConfig& cfg) const {
  const int64_t examples_per_step = o_.batch_size * o_.grad_accum * comm_.world_size();
  const int64_t tokens_per_step = examples_per_step * train_->tokens_per_example();
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  if (o_.steps > 0) return o_.steps;
  if (o_.tokens > 0) return ceil_div(o_.tokens, tokens_per_step);
  if (o_.epochs > 0) return ceil_div(o_.epochs * train_->count(), examples_per_step);
  if (o_.fraction != 0) {
    if (!(o_.fraction > 0 && o_.fraction <= 1)) throw InputError("--fraction", "", "must be in (0, 1]");
    int64_t pretrain = o_.pretrain_tokens;
    if (pretrain <= 0) {
      if (!cfg.pretraining_tokens)
        throw InputError(cfg.path, "gqa_training.tokens",
                         "absent (the model was not trained by gqa train): give --pretrain-tokens");
      pretrain = *cfg.pretraining_tokens;
    }
    return std::max<int64_t>(1, ceil_div(int64_t(std::llround(o_.fraction * double(pretrain))), tokens_per_step));
  }
  throw InputError("options", "budget", "give one of --steps, --tokens, --epochs or --fraction");
}

void Trainer::build_optimizer() {
  ParamGroup weights{"weights", 1.0, true, {}, {}}, no_decay{"no_decay", 1.0, false, {}, {}};
  ParamGroup scalars{"wgqa_scalars", o_.scalar_lr > 0 ? o_.scalar_lr / o_.adam.lr : 1.0, false, {}, {}};
  params_.clear();
  for (const ModelParameter& p : model_->parameters()) {
    p.tensor.requires_grad_(true);
    params_.push_back(p.tensor);
    ParamGroup& g = is_scale_role(p.role) ? scalars : decays(p) ? weights : no_decay;
    g.keys.push_back(p.key());
    g.params.push_back(p.tensor);
  }
  std::vector<ParamGroup> groups;
  for (ParamGroup* g : {&weights, &no_decay, &scalars})
    if (!g->params.empty()) groups.push_back(std::move(*g));
  opt_.reset();
  zero_.reset();
  if (o_.shard_optimizer || weights_dtype_ != at::kFloat)
    zero_ = std::make_unique<ShardedAdamW>(std::move(groups), o_.adam, comm_, o_.shard_optimizer, o_.bucket_bytes);
  else
    opt_ = std::make_unique<AdamW>(std::move(groups), o_.adam);
  model_->set_activation_checkpointing(o_.checkpoint_activations);
}

double Trainer::train_step(const std::vector<int64_t>& order) {
  const int world = comm_.world_size(), rank = comm_.rank();
  double loss_sum = 0;
  for (at::Tensor& p : params_) p.mutable_grad() = at::Tensor();
  for (int64_t a = 0; a < o_.grad_accum; ++a) {
    // Micro-batch a of this rank: 1 process with accumulation k sees the same examples in the
    // same order as k processes without it.
    const int64_t slot = a * world + rank;
    Batch b = train_->make(order.data() + slot * o_.batch_size, o_.batch_size);
    at::Tensor loss;
    {
      AutocastGuard autocast(device_.type(), compute_dtype_);
      at::Tensor logits = logits_of(*model_, b);
      loss = lm_loss(logits, b.labels);
      if (teacher_) {
        at::Tensor teacher_logits;
        {
          at::NoGradGuard no_grad;
          teacher_logits = logits_of(*teacher_, b);
        }
        loss = (1 - o_.distill_weight) * loss +
               o_.distill_weight * distill_loss(logits, teacher_logits, b.labels, o_.temperature);
      }
    }
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      const auto ck = list_checkpoints(o_.out_dir + "/checkpoints");
      throw InputError(
          o_.out_dir, "loss",
          "is " + std::to_string(value) + " at step " + std::to_string(step_ + 1) +
              "; stopped; the last good checkpoint is " +
              (ck.empty() ? std::string("none (lower --lr?)") : ck.back().second + " (lower --lr and --resume)"));
    }
    loss_sum += value;
    (loss / double(o_.grad_accum)).backward();
    if (zero_) zero_->reduce_gradients();  // into the float32 sum of this process's slice
  }
  // Every process learns whether any was asked to stop (stop_signals.h) in the same all-reduce
  // as the loss, so all of them stop after the same step.
  const int signal_here = StopSignals::received();
  stop_signal_ = signal_here;
  if (world > 1) {
    const auto sums = comm_.all_reduce_sum({loss_sum, double(signal_here), signal_here ? 1.0 : 0.0});
    loss_sum = sums[0] / world;
    stop_signal_ = sums[2] > 0 ? int(std::lround(sums[1] / sums[2])) : 0;
  }
  const double lr = schedule_.at(step_ + 1);
  double grad_norm = 0;
  if (zero_) {
    grad_norm = zero_->clip_gradients(o_.clip);
    zero_->step(lr);
  } else {
    for (at::Tensor& p : params_)
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    if (world > 1) {
      std::vector<at::Tensor> grads;
      for (at::Tensor& p : params_) grads.push_back(p.grad());
      comm_.all_reduce_mean(grads);
    }
    grad_norm = clip_grad_norm(params_, o_.clip);
    opt_->step(lr);
  }
  ++step_;
  tokens_ += int64_t(world) * o_.grad_accum * o_.batch_size * train_->tokens_per_example();
  last_loss_ = loss_sum / double(o_.grad_accum);
  if (rank == 0 && (o_.log_every <= 1 || step_ % o_.log_every == 0 || step_ == total_steps_)) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    log_->record("train", step_,
                 {{"loss", last_loss_},
                  {"lr", lr},
                  {"grad_norm", grad_norm},
                  {"tokens", double(tokens_)},
                  {"elapsed_s", elapsed}});
    auto stats = scalar_stats(model_->parameters());
    if (!stats.empty()) log_->record("wgqa", step_, stats);
  }
  return lr;
}

std::optional<double> Trainer::evaluate() {
  if (!valid_) return std::nullopt;
  at::NoGradGuard no_grad;
  AutocastGuard autocast(device_.type(), compute_dtype_);
  const int64_t n = std::min(o_.eval_sequences, valid_->count());
  double nll = 0;
  int64_t counted = 0;
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n; start += o_.batch_size) {
    idx.clear();
    for (int64_t i = start; i < std::min(n, start + o_.batch_size); ++i) idx.push_back(i);
    Batch b = valid_->make(idx.data(), int64_t(idx.size()));
    at::Tensor logits = logits_of(*model_, b).to(at::kFloat);
    nll += at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), b.labels.reshape({-1}), {}, at::Reduction::Sum,
                                  kIgnore)
               .item<double>();
    counted += (b.labels != kIgnore).sum().item<int64_t>();
  }
  return counted ? std::optional<double>(nll / double(counted)) : std::nullopt;
}

void Trainer::save_checkpoint(int64_t step) {
  // With master weights each process that holds a shard writes it into a staging folder first;
  // rank 0 then moves the files into the checkpoint it publishes at once, so a kill at any point
  // leaves either the whole checkpoint or none (and a staging folder the next start removes).
  const std::string staging = o_.out_dir + "/checkpoints/" + checkpoint_name(step) + ".shards";
  const int writers = zero_ && zero_->sharded() ? comm_.world_size() : 1;
  if (zero_) {
    if (comm_.rank() == 0) {
      files::remove_all(staging);
      if (!files::make_directories(staging)) throw InputError(staging, "", "cannot create the folder");
    }
    comm_.barrier();
    if (comm_.rank() < writers) zero_->save(staging + "/" + ShardedAdamW::file_name(comm_.rank(), writers));
    comm_.barrier();
  }
  if (comm_.rank() == 0) {
    const std::string dir = o_.out_dir + "/checkpoints/" + checkpoint_name(step);
    json state = {{"step", step},
                  {"tokens", tokens_},
                  {"batch_order", order_->state()},
                  {"run", run_config_},
                  {"optimizer_steps", zero_ ? zero_->steps() : opt_->steps()},
                  {"last_loss", last_loss_}};
    SaveOptions so;
    so.passthrough_from = o_.model_dir;
    // Exact float32 weights, so a resumed run continues bit for bit; with master weights the
    // exact values are in the shard files and the model keeps its training dtype.
    so.dtype = weights_dtype_ == at::kBFloat16 ? DType::BF16 : DType::F32;
    if (zero_) {
      for (int r = 0; r < writers; ++r) {
        const std::string name = ShardedAdamW::file_name(r, writers);
        so.extra_files[name] = [from = staging + "/" + name](const std::string& path) {
          if (std::rename(from.c_str(), path.c_str()) != 0)
            throw InputError(from, "", "cannot move into the checkpoint: " + files::write_failure());
        };
      }
    } else {
      so.extra_files["optimizer.safetensors"] = [this](const std::string& path) { write_optimizer_state(*opt_, path); };
    }
    so.extra_files["trainer_state.json"] = [state](const std::string& path) {
      std::ofstream f(path);
      f << state.dump(2) << "\n";
      f.flush();
      if (!f) throw InputError(path, "", files::write_failure());
    };
    log_->flush();  // the logs are never behind a checkpoint
    save_model(*model_, *source_, model_config_, dir, so);
    auto all = list_checkpoints(o_.out_dir + "/checkpoints");
    for (size_t i = 0; i + size_t(std::max<int64_t>(1, o_.keep_checkpoints)) < all.size(); ++i)
      remove_folder_atomically(all[i].second);  // a kill mid-delete must not leave a broken step-N
    remove_stale_temp_folders(o_.out_dir + "/checkpoints", "step-");
    if (zero_) files::remove_all(staging);
    say("checkpoint " + dir);
  }
  comm_.barrier();
}

void Trainer::resume_from(const std::string& dir) {
  const json state = read_json_file(dir + "/trainer_state.json");
  const json& saved = state.at("run");
  for (auto it = run_config_.begin(); it != run_config_.end(); ++it)
    if (!may_change_on_resume(it.key()) && (!saved.contains(it.key()) || saved[it.key()] != it.value()))
      throw InputError(dir + "/trainer_state.json", "run." + it.key(),
                       "the checkpoint was made with " +
                           (saved.contains(it.key()) ? saved[it.key()].dump() : std::string("nothing")) +
                           ", this run has " + it.value().dump() + " (a different model or config cannot resume it)");
  source_ = std::make_unique<Checkpoint>(dir);
  model_ = load_model(*source_, Placement{device_, weights_dtype_});
  build_optimizer();
  const int64_t optimizer_steps = state.at("optimizer_steps").get<int64_t>();
  const std::vector<std::string> shards = shard_files(dir);
  if (zero_) {
    zero_->load(shards.empty() ? std::vector<std::string>{dir + "/optimizer.safetensors"} : shards, optimizer_steps);
  } else {
    if (!shards.empty())
      throw InputError(
          dir, "optimizer-rank-*",
          "holds master weights (written with --shard-optimizer or --dtype bf16); resume with the same options");
    opt_->load_state(read_optimizer_state(dir + "/optimizer.safetensors", device_), optimizer_steps);
  }
  order_->restore(state.at("batch_order"));
  step_ = state.at("step").get<int64_t>();
  tokens_ = state.at("tokens").get<int64_t>();
  last_loss_ = state.value("last_loss", 0.0);
}

void Trainer::regroup() {
  // Every process computes the same grouping from the same (all-reduced) weights.
  const RegroupReport r = regroup_weighted_blocks(*model_, o_.seed + uint64_t(step_));
  model_config_ = with_layout_fields(model_->config());
  if (comm_.rank() == 0) {
    log_->record("regroup", step_,
                 {{"blocks", double(r.blocks)},
                  {"changed", double(r.changed)},
                  {"similarity_before", r.similarity_before},
                  {"similarity_after", r.similarity_after}});
    char buf[160];
    std::snprintf(buf, sizeof buf, "step %lld: regrouped %lld of %lld blocks, within-group similarity %.4f -> %.4f",
                  static_cast<long long>(step_), static_cast<long long>(r.changed), static_cast<long long>(r.blocks),
                  r.similarity_before, r.similarity_after);
    say(buf);
  }
}

void Trainer::save_result() {
  if (comm_.rank() != 0) return;
  const ModelConfig& cfg = source_->config();
  json config = model_config_;
  json record = run_config_;
  record["steps"] = step_;
  record["tokens"] = tokens_;
  record["final_train_loss"] = last_loss_;
  if (valid_loss_) record["valid_loss"] = *valid_loss_;
  config[o_.record_as] = record;
  const std::string model_dir = trained_model_dir(o_.out_dir);
  SaveOptions so;
  so.passthrough_from = o_.model_dir;
  if (!cfg.weighted.empty() && o_.fold) {
    const std::string weighted = o_.out_dir + "/model-weighted";
    save_model(*model_, *source_, config, weighted, so);
    fold_checkpoint(weighted, model_dir, /*force=*/true, nullptr);
    say("WGQA scalars folded: " + model_dir + " (learned scalars kept in " + weighted + ")");
  } else {
    save_model(*model_, *source_, config, model_dir, so);
  }
}

TrainSummary Trainer::run() {
  if (o_.threads > 0) at::set_num_threads(o_.threads);
  device_ = at::Device(o_.device);
  if (device_.is_cuda() && !at::hasCUDA()) throw InputError("--device", o_.device, "no CUDA device is available");
  if (o_.batch_size < 1 || o_.grad_accum < 1 || o_.seq_len < 2)
    throw InputError("options", "batch", "--batch-size, --grad-accum must be >= 1 and --seq-len >= 2");
  if (o_.fraction != 0 && !(o_.fraction > 0 && o_.fraction <= 1))
    throw InputError("--fraction", "", "must be in (0, 1], got " + std::to_string(o_.fraction));
  at::manual_seed(o_.seed);
  // Everything that can be wrong with the input is found before OUT_DIR is touched.
  source_ = std::make_unique<Checkpoint>(o_.model_dir);
  const ModelConfig cfg = source_->config();
  runtime_dtype(o_.dtype, *source_);  // checks the option
  const at::ScalarType checkpoint_dtype = runtime_dtype("auto", *source_);
  const TrainingDtypes dtypes = training_dtypes(o_.dtype, checkpoint_dtype, device_.is_cuda());
  compute_dtype_ = dtypes.compute;
  weights_dtype_ = dtypes.weights;
  require_training_memory(o_, cfg, comm_.world_size(), checkpoint_dtype, device_);
  load_data(cfg);
  total_steps_ = plan_steps(cfg);
  run_config_ = trajectory_config(o_, comm_.world_size(), total_steps_, task_);
  schedule_ = Schedule{o_.adam.lr, o_.warmup_steps >= 0 ? o_.warmup_steps : total_steps_ / 20, total_steps_, o_.decay,
                       o_.min_lr_ratio};
  const int64_t global_batch = o_.batch_size * o_.grad_accum * comm_.world_size();
  if (train_->count() < global_batch)
    throw InputError(o_.data.paths.empty() ? "data" : o_.data.paths[0], "",
                     "has " + std::to_string(train_->count()) + " sequences, fewer than one step's batch of " +
                         std::to_string(global_batch));
  order_ = std::make_unique<BatchOrder>(train_->count(), global_batch, o_.seed);
  prepare_output();

  const auto checkpoints = list_checkpoints(o_.out_dir + "/checkpoints");
  if (o_.resume && !checkpoints.empty()) {
    resume_from(checkpoints.back().second);
    say("resumed from " + checkpoints.back().second + " at step " + std::to_string(step_));
  } else {
    model_ = load_model(*source_, Placement{device_, weights_dtype_});
    std::vector<at::Tensor> weights;
    for (const ModelParameter& p : model_->parameters()) weights.push_back(p.tensor);
    comm_.broadcast(weights);  // identical starting weights on every process
    build_optimizer();
  }
  model_config_ = source_->config().raw;
  if (o_.regroup_every > 0 && model_->config().weighted.empty())
    throw InputError(o_.model_dir, "gqa_weighted",
                     "--regroup-every needs a weighted folder (gqa convert --strategy weighted)");
  if (!o_.teacher_dir.empty()) {
    teacher_ = load_model(o_.teacher_dir, Placement{device_, weights_dtype_});
    if (teacher_->config().vocab_size != cfg.vocab_size)
      throw InputError(o_.teacher_dir, "vocab_size", "teacher and student vocabularies differ");
  }
  if (comm_.rank() == 0) {
    json logged = run_config_;
    log_ = std::make_unique<TrainLog>(o_.out_dir, logged, o_.resume ? step_ : -1);
    if (o_.progress) bar_ = std::make_unique<ProgressBar>(total_steps_, std::cerr, ProgressBar::stderr_is_tty());
  }
  log_optimizer_memory();
  say("training " + std::to_string(total_steps_) + " steps of " + std::to_string(global_batch) + " x " +
      std::to_string(train_->tokens_per_example()) + " tokens (" + task_ + ", " + std::to_string(comm_.world_size()) +
      " process" + (comm_.world_size() > 1 ? "es" : "") + ", " + o_.device + ")");

  StopSignals stop_signals;
  TrainSummary s;
  auto last_report = std::chrono::steady_clock::now();
  int64_t tokens_at_report = tokens_;
  double tokens_per_s = 0;
  while (step_ < total_steps_) {
    const double lr = train_step(order_->next());
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last_report).count();
    if (dt > 0.5 || step_ == total_steps_) {
      tokens_per_s = double(tokens_ - tokens_at_report) / std::max(dt, 1e-9);
      tokens_at_report = tokens_;
      last_report = now;
    }
    if (bar_) bar_->update(step_, tokens_per_s, last_loss_, lr);
    if (o_.regroup_every > 0 && step_ % o_.regroup_every == 0 && step_ < total_steps_) regroup();
    const bool last = step_ == total_steps_;
    if ((o_.eval_every > 0 && step_ % o_.eval_every == 0) || last) {
      valid_loss_ = evaluate();
      if (valid_loss_ && comm_.rank() == 0) {
        log_->record("valid", step_, {{"loss", *valid_loss_}, {"perplexity", std::exp(*valid_loss_)}});
        char buf[128];
        std::snprintf(buf, sizeof buf, "step %lld: valid loss %.4f, perplexity %.3f", static_cast<long long>(step_),
                      *valid_loss_, std::exp(*valid_loss_));
        say(buf);
      }
    }
    const bool saved = (o_.save_every > 0 && step_ % o_.save_every == 0) || last;
    if (saved || stop_signal_) save_checkpoint(step_);
    if (stop_signal_ && !last) {
      s.stopped_by = stop_signal_;
      s.checkpoint = o_.out_dir + "/checkpoints/" + checkpoint_name(step_);
      break;
    }
  }
  if (bar_) bar_->finish();
  if (!s.stopped_by) save_result();
  comm_.barrier();
  s.steps = step_;
  s.tokens = tokens_;
  s.last_loss = last_loss_;
  s.valid_loss = valid_loss_;
  s.model_dir = trained_model_dir(o_.out_dir);
  s.log_path = train_log_path(o_.out_dir);
  return s;
}

}  // namespace

TrainPlanOptions plan_options(const TrainOptions& o, int nproc, at::ScalarType checkpoint_dtype) {
  TrainPlanOptions p;
  p.nproc = nproc;
  p.batch_size = o.batch_size;
  p.seq_len = o.seq_len;
  p.grad_accum = o.grad_accum;
  p.cuda = at::Device(o.device).is_cuda();
  const TrainingDtypes dtypes = training_dtypes(o.dtype, checkpoint_dtype, p.cuda);
  p.weight_bytes = int(c10::elementSize(dtypes.weights));
  p.compute_bytes = int(c10::elementSize(dtypes.compute));
  p.shard_optimizer = o.shard_optimizer;
  p.checkpoint_activations = o.checkpoint_activations;
  p.bucket_bytes = o.bucket_bytes;
  return p;
}

TrainSummary run_training(const TrainOptions& opts, Communicator& comm, std::ostream& out) {
  Trainer t(opts, comm, out);
  return t.run();
}

std::optional<TrainSummary> completed_run(const TrainOptions& opts) {
  TrainSummary s;
  s.model_dir = trained_model_dir(opts.out_dir);
  s.log_path = train_log_path(opts.out_dir);
  const std::string config_path = s.model_dir + "/config.json";
  if (!files::exists(config_path)) return std::nullopt;
  const json config = read_json_file(config_path);
  const auto record = config.find(opts.record_as);
  if (record == config.end() || !record->is_object()) return s;  // a model without the record: paths only
  const auto number = [&](const char* key) -> const json* {
    const auto it = record->find(key);
    return it != record->end() && it->is_number() ? &*it : nullptr;
  };
  if (const json* v = number("steps")) s.steps = v->get<int64_t>();
  if (const json* v = number("tokens")) s.tokens = v->get<int64_t>();
  if (const json* v = number("final_train_loss")) s.last_loss = v->get<double>();
  if (const json* v = number("valid_loss")) s.valid_loss = v->get<double>();
  return s;
}

}  // namespace gqa
