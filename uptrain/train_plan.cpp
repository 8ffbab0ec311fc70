#include "uptrain/train_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/family.h"
#include "core/format.h"
#include "core/init_model.h"
#include "core/model/layers.h"

namespace gqa {
namespace {

// Elements of one micro-batch token that backward keeps for one block (the tensors autograd saves
// in core/model: each norm's input and output; q, k, v after RoPE and the attention
// output twice, once for SDPA and once reshaped for the output projection; the FFN's
// intermediates, four of them when gated). Attention is counted as the fused kernels run it
// (logsumexp, no T x T probabilities), which is what CPU flash attention and CUDA use.
int64_t block_elements(const ModelConfig& c, AttentionModule m, int64_t layer) {
  const AttentionLayout& l = c.layout(m, layer);
  const int64_t q = int64_t(l.n_q) * l.head_dim_qk, kv = int64_t(l.n_kv) * (l.head_dim_qk + l.head_dim_v);
  const int64_t ffn = c.gated_ffn ? 4 * c.ffn_dim : 2 * c.ffn_dim;
  // LayerNorm keeps its input and output; RMSNorm (Llama, T5) its float32 input, the normalised
  // value and the output.
  const int64_t norm = c.spec().norm == NormKind::RMSNorm ? 3 * c.d_model : 2 * c.d_model;
  return 2 * norm + 3 * q + kv + ffn;
}

// Bytes of the loss over [tokens, vocab] logits at its peak: the logits, their float32 copy
// (when computed in 16 bits) and log-softmax kept for backward, and the two float32 gradients
// backward makes of them.
int64_t loss_bytes(int64_t tokens, int64_t vocab, int e) { return tokens * vocab * (e + (e < 4 ? 4 : 0) + 4 + 8); }

constexpr int64_t kMiB = int64_t(1) << 20;

}  // namespace

TrainingDtypes training_dtypes(const std::string& option, at::ScalarType checkpoint, bool cuda) {
  TrainingDtypes d;
  const bool automatic = option == "auto";
  d.compute = automatic ? checkpoint : parse_runtime_dtype(option);
  // float32 matmuls on a GPU cost several times bf16's time for nothing training needs.
  if (automatic && cuda && d.compute == at::kFloat) d.compute = at::kBFloat16;
  const bool bf16_weights =
      d.compute == at::kBFloat16 && (option == "bf16" || (automatic && cuda && checkpoint == at::kBFloat16));
  d.weights = bf16_weights ? at::kBFloat16 : at::kFloat;
  return d;
}

int64_t TrainPlan::peak() const {
  const int64_t base = weights + optimizer + teacher + runtime;
  const int64_t after_backward = gradients + buffers;  // gradients, buckets, the step's temporaries
  // Backward holds the activations and the loss (and the gradients of earlier micro-batches when
  // they persist), then frees them as it makes the gradients.
  return base + std::max(activations + loss + (gradients_persist ? gradients : 0), after_backward);
}

TrainPlan plan_training(const ModelConfig& c, const ModelConfig* teacher, const TrainPlanOptions& o) {
  TrainPlan p;
  const int e = o.compute_bytes, w = o.weight_bytes;
  const int shards = o.shard_optimizer ? o.nproc : 1;
  const bool masters = o.shard_optimizer || w != 4;
  p.parameters = parameter_count(c);
  const int64_t P = p.parameters, per_shard = (P + shards - 1) / shards;
  p.weights = P * w;
  p.gradients = P * w;
  // Sharded or with master weights: float32 masters (float32 weights are their own), both moments
  // and the gradient sum of this process's slice; the plain optimizer: both moments.
  p.optimizer = masters ? per_shard * (w == 4 ? 12 : 16) : P * 8;

  // Tokens of one micro-batch: T5 splits the window into source and target halves.
  const bool t5 = c.is_encoder_decoder();
  const int64_t tokens = o.batch_size * o.seq_len, target = t5 ? tokens - tokens / 2 : tokens, source = tokens - target;
  std::vector<std::pair<int64_t, int64_t>> blocks;  // (tokens, elements per token) of each block
  for (int64_t l = 0; l < c.n_layers; ++l) {
    int64_t per_token = block_elements(c, AttentionModule::DecoderSelf, l);
    if (t5)
      per_token +=
          block_elements(c, AttentionModule::DecoderCross, l) - 2 * c.ffn_dim;  // cross-attention, no second FFN
    blocks.push_back({target, per_token});
  }
  for (int64_t l = 0; t5 && l < c.n_encoder_layers; ++l)
    blocks.push_back({source, block_elements(c, AttentionModule::EncoderSelf, l)});
  int64_t kept = 0, largest = 0;
  for (const auto& [n, per_token] : blocks) {
    kept += n * per_token * e;
    largest = std::max(largest, n * per_token * e);
  }
  // Checkpointing keeps each block's input and, in backward, one block's activations (recomputed)
  // beside the gradients flowing through it.
  if (o.checkpoint_activations) {
    kept = 0;
    for (const auto& [n, per_token] : blocks) kept += n * c.d_model * e;
    kept += 2 * largest;
  }
  p.activations = kept + 3 * target * c.d_model * e;
  p.loss = loss_bytes(target, c.vocab_size, e);

  if (teacher) {
    p.teacher_parameters = parameter_count(*teacher);
    // Its weights, and the distillation term: teacher logits, both log-softmaxes at T and exp.
    p.teacher = p.teacher_parameters * w + target * c.vocab_size * (e + 16);
  }
  // Buckets in flight (gradients cast to float32 for the reduction, gathered weights) and the
  // optimizer step's temporaries (sharded_adamw.h updates in chunks; AdamW per tensor).
  const int64_t bucket_elements = int64_t(o.bucket_bytes) / w;
  p.buffers = o.nproc > 1 ? bucket_elements * (masters ? 4 + 4 + 2 * w : 2 * w) : 0;
  p.buffers += masters ? (int64_t(1) << 24) * 4 * 2 : std::min<int64_t>(P, c.vocab_size * c.d_model) * 4 * 2;
  // Measured: a gqa process with LibTorch's libraries loaded (469 MiB, docs/benchmarks.md), plus
  // a CUDA context and cuBLAS workspaces on a GPU.
  p.runtime = o.cuda ? 1024 * kMiB : 470 * kMiB;
  p.gradients_persist = !masters && o.grad_accum > 1;
  return p;
}

std::string describe_plan(const TrainPlan& p, const TrainPlanOptions& o, int64_t device_memory,
                          const std::string& memory_source) {
  char head[512];
  std::snprintf(head, sizeof head,
                "plan per process: %.2f B parameters (%s parameters), %d process%s, micro-batch %lld x %lld, %s%s%s\n",
                double(p.parameters) / 1e9, format_with_commas(p.parameters).c_str(), o.nproc, o.nproc > 1 ? "es" : "",
                static_cast<long long>(o.batch_size), static_cast<long long>(o.seq_len),
                o.weight_bytes == 2    ? "bf16 weights + f32 masters"
                : o.compute_bytes == 2 ? "f32 weights, 16-bit autocast"
                                       : "f32",
                o.shard_optimizer ? (", ZeRO-2 over " + std::to_string(o.nproc)).c_str() : "",
                o.checkpoint_activations ? ", activation checkpointing" : "");
  std::string out = head;
  auto row = [&](const char* name, int64_t bytes, const char* note) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-12s %12s  %s\n", name, format_bytes(double(bytes)).c_str(), note);
    out += line;
  };
  row("weights", p.weights, o.weight_bytes == 2 ? "bf16" : "f32");
  row("gradients", p.gradients, o.shard_optimizer ? "full during backward, freed after each reduce-scatter" : "");
  row("optimizer", p.optimizer,
      o.shard_optimizer || o.weight_bytes != 4 ? "f32 masters, moments, gradient sum of this slice" : "AdamW moments");
  row("activations", p.activations,
      o.checkpoint_activations ? "block inputs, one block recomputed" : "one micro-batch");
  row("loss", p.loss, "logits, log-softmax and their gradients");
  if (p.teacher) row("teacher", p.teacher, "weights and distillation logits");
  row("buffers", p.buffers, "buckets, optimizer temporaries");
  row("runtime", p.runtime, o.cuda ? "CUDA context, LibTorch" : "LibTorch");
  const bool fits = p.peak() <= device_memory;
  char tail[256];
  std::snprintf(tail, sizeof tail, "  %-12s %12s  of %s (%s): %s\n", "peak", format_bytes(double(p.peak())).c_str(),
                format_bytes(double(device_memory)).c_str(), memory_source.c_str(), fits ? "fits" : "does not fit");
  return out + tail;
}

MemoryAvailable memory_per_process(const at::Device& device, int processes_on_host) {
  MemoryAvailable have = memory_available(device);
  if (!device.is_cuda() && processes_on_host > 1) {
    have.bytes /= processes_on_host;
    have.source += " / " + std::to_string(processes_on_host) + " processes";
  }
  return have;
}

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char ch) { return std::isspace(ch); }), unit.end());
  for (char& ch : unit) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  const std::pair<const char*, double> units[] = {
      {"", 1},      {"b", 1},        {"kb", 1e3},        {"mb", 1e6},           {"gb", 1e9},
      {"tb", 1e12}, {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  for (const auto& [name, scale] : units)
    if (used > 0 && unit == name && value > 0 && std::isfinite(value * scale) && value * scale < 9e18)
      return int64_t(value * scale);
  throw InputError(what, "", "expected a size such as 80GiB, 80GB or 81920MiB, got '" + text + "'");
}

}  // namespace gqa
