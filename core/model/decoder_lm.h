// Decoder-only transformer shared by GPT-2, GPT-Neo and Llama: pre-norm blocks of grouped
// self-attention and a feed-forward, learned or rotary positions. The family files only fill it.
#pragma once
#include <functional>
#include <optional>
#include <vector>

#include "core/model/attention.h"
#include "core/model/model.h"

namespace gqa {

struct DecoderLayer {
  Norm attn_norm, ffn_norm;
  Attention attn;
  FeedForward ffn;
  int64_t window = 0;  // > 0: local attention over the last `window` slots (GPT-Neo)
};

class DecoderLM : public Model {
 public:
  DecoderLM(ModelConfig cfg, Placement p) : Model(std::move(cfg), p) {}
  at::Tensor hidden(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache = nullptr,
                    const Memory* memory = nullptr, const at::Tensor& positions = {}) const override;
  at::Tensor logits(const at::Tensor& h) const override { return at::linear(h, lm_head); }
  std::vector<AttentionBlock> attention_blocks() override;

  // How the family loads block `layer` (its softmax scale, window, norm kind); a OneBlock model
  // calls it for each block of each forward.
  using LayerLoader = std::function<DecoderLayer(const Checkpoint&, int64_t layer, const Placement&)>;
  LayerLoader load_layer;
  // Fills `layers` with every block (Whole models), through load_layer.
  void load_all_layers(const Checkpoint& ckpt);

  at::Tensor token_embedding;     // [vocab, d]
  at::Tensor position_embedding;  // [max_positions, d] or undefined (rotary)
  std::optional<Rope> rope;
  std::vector<DecoderLayer> layers;
  Norm final_norm;
  at::Tensor lm_head;  // [vocab, d]; the embedding when tied

 private:
  struct Pass;  // one batch on its way through the blocks
  Pass begin(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache, const at::Tensor& positions) const;
  void run_layer(Pass& pass, const DecoderLayer& layer, size_t l) const;
  // run_layer with its activations recomputed in backward (activation checkpointing).
  void run_layer_checkpointed(Pass& pass, const DecoderLayer& layer, size_t l) const;
  const at::Tensor& layer_mask(Pass& pass, const DecoderLayer& layer) const;
};

// Shared loading steps for the family builders.
Norm load_norm(const Checkpoint& ckpt, Stack s, Role weight, Role bias, int64_t layer, bool rms, double eps,
               const Placement& p);
FeedForward load_feed_forward(const Checkpoint& ckpt, Stack s, int64_t layer, const Placement& p);
at::Tensor load_lm_head(const Checkpoint& ckpt, const at::Tensor& token_embedding, const Placement& p);

// The pieces every decoder-only family has: a pre-norm block (LayerNorm or RMSNorm) with the
// given softmax scale, and the embeddings / final norm / lm_head around the blocks.
DecoderLayer load_decoder_layer(const Checkpoint& ckpt, int64_t layer, double scale, bool rms, const Placement& p);
std::unique_ptr<DecoderLM> load_decoder_shell(const Checkpoint& ckpt, bool learned_positions, bool rms,
                                              const Placement& p);

}  // namespace gqa
