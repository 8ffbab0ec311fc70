// `gqa uptrain --plan`: the memory one training process will hold, from config.json alone, for a
// given number of processes, micro-batch, dtype, ZeRO-2 sharding and activation checkpointing;
// and whether it fits a device. The figures count the tensors this trainer actually keeps (see
// trainer.cpp and sharded_adamw.h), not a textbook formula; docs/benchmarks.md holds them against
// measured peaks.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model/memory_plan.h"

namespace gqa {

// The dtypes of a training run for --dtype `option` (auto resolves to `checkpoint`, the dtype the
// checkpoint declares): the forward's compute dtype, and the weights' (bf16 with float32 masters
// when bf16 is asked for, or on CUDA for a bf16 checkpoint; float32 otherwise, under autocast).
struct TrainingDtypes {
  at::ScalarType weights = at::kFloat, compute = at::kFloat;
};
TrainingDtypes training_dtypes(const std::string& option, at::ScalarType checkpoint, bool cuda);

struct TrainPlanOptions {
  int nproc = 1;
  int64_t batch_size = 8, seq_len = 256, grad_accum = 1;
  int weight_bytes = 4;   // 2: bf16 weights with float32 masters (--dtype bf16)
  int compute_bytes = 4;  // activations: 2 under bf16/f16 autocast or with bf16 weights
  bool shard_optimizer = false, checkpoint_activations = false;
  bool cuda = false;
  std::size_t bucket_bytes = std::size_t(25) << 20;
};

struct TrainPlan {
  int64_t parameters = 0, teacher_parameters = 0;
  // Bytes per process.
  int64_t weights = 0;      // the model's weights in their training dtype
  int64_t gradients = 0;    // every parameter's gradient (freed after each micro-batch's reduce-scatter when sharded)
  int64_t optimizer = 0;    // AdamW moments, plus masters and the float32 gradient sum for this process's slice
  int64_t activations = 0;  // what backward keeps of one micro-batch
  int64_t loss = 0;         // the logits' loss at its peak (logits, log-softmax, their gradients)
  int64_t teacher = 0;      // the distillation teacher's weights and logits
  int64_t buffers = 0;      // communication buckets and optimizer-step temporaries
  int64_t runtime = 0;      // the process itself: LibTorch, allocator, CUDA context
  // Live tensors at the peak. On the CPU, glibc by default keeps freed blocks of up to 32 MiB in
  // its heap, so RSS can exceed this by what backward freed (docs/benchmarks.md measures both).
  // Gradients and activations coexist fully only when gradients persist across micro-batches
  // (the unsharded optimizer with --grad-accum > 1); otherwise backward frees activations as it
  // makes gradients, and the peak holds the larger of activations and gradients + buffers.
  bool gradients_persist = false;
  int64_t peak() const;
};

TrainPlan plan_training(const ModelConfig& model, const ModelConfig* teacher, const TrainPlanOptions& o);

// The per-process table `gqa uptrain --plan` prints, ending with whether `device_memory` bytes
// (from `memory_source`) hold it.
std::string describe_plan(const TrainPlan& plan, const TrainPlanOptions& o, int64_t device_memory,
                          const std::string& memory_source);

// What one of `processes_on_host` training processes may use of `device` (memory_plan.h's
// memory_available): a GPU's free memory, or the host's share.
MemoryAvailable memory_per_process(const at::Device& device, int processes_on_host);

// "80GiB", "80 GB", "81920MiB", "8.5e10": bytes. Throws InputError naming `what`.
int64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace gqa
