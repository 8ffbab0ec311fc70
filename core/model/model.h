// The runtime model: built from config.json + the attention layout of every block, so any grouping
// a converter writes (uneven groups, smaller head dims) simply runs.
#pragma once
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/model/kv_cache.h"
#include "core/model/layers.h"
#include "core/model/recompute.h"

namespace gqa {

struct Attention;

// One attention block of a model, for code that changes blocks in place (regrouping in training).
struct AttentionBlock {
  AttentionModule module;
  int64_t layer;
  Attention* attention;
};

// Encoder output of a seq2seq model, with its padding mask [B, S] (1 = token).
struct Memory {
  at::Tensor hidden;
  at::Tensor mask;
};

// Sees the key/value input of every attention block during a forward: [B, T, d] with its token
// mask [B, T] (1 = token). Used for calibration statistics; no effect on the result.
using AttentionObserver =
    std::function<void(AttentionModule module, int64_t layer, const at::Tensor& kv_input, const at::Tensor& mask)>;

// Whole: every weight loaded at once (generation, training, evaluation that fits in memory).
// OneBlock: only the embeddings, final norm and head stay loaded; each forward runs the blocks one
// at a time, loading a block's weights from the checkpoint just before it runs and releasing them
// after, with the hidden states of the whole input carried between blocks (as llm-compressor's
// sequential onloading and GPTQ's layer-wise calibration do). Peak memory is one block plus the
// hidden states, whatever the depth: calibration and --report of models larger than memory.
enum class Residency { Whole, OneBlock };

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return config_; }
  const Placement& placement() const { return placement_; }
  bool is_encoder_decoder() const { return config_.is_encoder_decoder(); }

  // Logits [B, T, vocab] for `ids` [B, T] with `mask` [B, T] (1 = token, 0 = padding; decoder-only
  // batches are left-padded). With a cache the step continues the cached sequence. Positions
  // default to the count of real tokens before each one; pass `positions` [B, T] to override.
  // Decoder-only models given no mask and no cache (packed training batches) use the causal
  // attention fast path.
  // Encoder-decoder models: `ids` are decoder inputs and `memory` must come from encode().
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache = nullptr,
                     const Memory* memory = nullptr, const at::Tensor& positions = {}) const {
    return logits(hidden(ids, mask, cache, memory, positions));
  }
  // The same pass up to the final norm: [B, T, d]. Loss code turns chosen rows into logits a chunk
  // at a time (logits of batch x context x vocabulary floats dominate evaluation memory).
  virtual at::Tensor hidden(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache = nullptr,
                            const Memory* memory = nullptr, const at::Tensor& positions = {}) const = 0;
  // hidden [..., d] -> logits [..., vocab].
  virtual at::Tensor logits(const at::Tensor& hidden) const = 0;
  virtual Memory encode(const at::Tensor& ids, const at::Tensor& mask) const;
  // OneBlock models run a forward over all of its sequences block by block, `stream_batch`
  // sequences at a time inside each block; callers give them every sequence in one call (a
  // forward per batch would load every block once per batch). No KV cache.
  Residency residency() const { return stream_source_ ? Residency::OneBlock : Residency::Whole; }
  int64_t stream_batch() const { return stream_batch_; }
  // A setting of the next run rather than model state, so callers holding a const model set it.
  void set_stream_batch(int64_t b) const { stream_batch_ = std::max<int64_t>(1, b); }
  // Activation checkpointing for training: with it on, a Whole model's forward under grad mode
  // without a KV cache keeps only each block's input and recomputes the block's activations in
  // backward (see recompute.h): activation memory of one block instead of all, for about one more
  // forward. Gradients are the same. A setting of the next run, as set_stream_batch.
  void set_activation_checkpointing(bool on) const { activation_checkpointing_ = on; }
  bool activation_checkpointing() const { return activation_checkpointing_; }
  // A cache of the decoder's self-attention for `batch` sequences of up to `capacity` tokens.
  KVCache new_cache(int64_t batch, int64_t capacity) const;
  void set_observer(AttentionObserver o) { observer_ = std::move(o); }
  // Every attention block (encoder self, decoder self, decoder cross as the family has them).
  virtual std::vector<AttentionBlock> attention_blocks() = 0;
  // Records a block's new layout (after its Attention changed) so config() stays the truth.
  void set_layout(AttentionModule m, int64_t layer, const AttentionLayout& l) {
    config_.layouts.at(m).at(size_t(layer)) = l;
  }
  // Every weight with the role it was loaded from (tied weights once), in load order.
  const std::vector<ModelParameter>& parameters() const { return parameters_; }
  void set_parameters(std::vector<ModelParameter> p) { parameters_ = std::move(p); }
  // OneBlock models read their blocks from this checkpoint (kept open, memory-mapped).
  void set_stream_source(std::shared_ptr<const Checkpoint> c) { stream_source_ = std::move(c); }

 protected:
  Model(ModelConfig cfg, Placement p) : config_(std::move(cfg)), placement_(p) {}
  ModelConfig config_;
  Placement placement_;
  AttentionObserver observer_;
  std::vector<ModelParameter> parameters_;
  std::shared_ptr<const Checkpoint> stream_source_;
  mutable int64_t stream_batch_ = 8;
  mutable bool activation_checkpointing_ = false;
  // Whether this forward runs its blocks through run_checkpointed.
  bool checkpoint_blocks(const KVCache* cache) const {
    return activation_checkpointing_ && at::GradMode::is_enabled() && !cache && residency() == Residency::Whole;
  }
  // Sequences [first, first + count) of a OneBlock forward's input, as micro-batch boundaries.
  std::vector<std::pair<int64_t, int64_t>> stream_slices(int64_t sequences) const;
  // Once per forward: not again when a checkpointed block is recomputed in backward.
  void observe(AttentionModule m, int64_t layer, const at::Tensor& kv_input, const at::Tensor& mask) const {
    if (observer_ && !recomputing()) observer_(m, layer, kv_input, mask);
  }
};

// Loads any supported family from a Hugging Face folder (fp32 on CPU by default). OneBlock needs
// the checkpoint to outlive the model: the shared_ptr overload keeps it.
std::unique_ptr<Model> load_model(const Checkpoint& ckpt, const Placement& p = {});
std::unique_ptr<Model> load_model(const std::string& dir, const Placement& p = {}, Residency r = Residency::Whole);
std::unique_ptr<Model> load_model(std::shared_ptr<const Checkpoint> ckpt, const Placement& p, Residency r);

// The encoder-decoder runtime (core/model/t5.cpp), called by load_model; `blocks` false builds the
// shell only (embeddings, final norm, head) for a OneBlock model. Decoder-only families run on
// build_decoder_lm (core/model/decoder_lm.h).
std::unique_ptr<Model> build_t5(const Checkpoint& ckpt, const Placement& p, bool blocks);

}  // namespace gqa
