// The decoder-only transformer every decoder-only family runs on: blocks of grouped self-attention
// and a feed-forward, wired pre-norm, parallel (GPT-NeoX) or post-norm (OPT-350m); learned (with
// an offset) or rotary (whole or partial) positions; an optional embedding projection (OPT). The
// family files (core/families/) pick these through ModelConfig and their FamilySpec.
#pragma once
#include <functional>
#include <optional>
#include <vector>

#include "core/model/attention.h"
#include "core/model/latent_attention.h"
#include "core/model/model.h"

namespace gqa {

struct DecoderLayer {
  Norm attn_norm, ffn_norm;
  Attention attn;                         // unused when the block is latent
  std::optional<LatentAttention> latent;  // a latent (MLA) block: gqa_latent in config.json
  FeedForward ffn;
  int64_t window = 0;  // > 0: local attention over the last `window` slots (GPT-Neo)
};

class DecoderLM : public Model {
 public:
  DecoderLM(ModelConfig cfg, Placement p) : Model(std::move(cfg), p) {}
  at::Tensor hidden(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache = nullptr,
                    const Memory* memory = nullptr, const at::Tensor& positions = {}) const override;
  at::Tensor logits(const at::Tensor& h) const override {
    return at::linear(project_out.defined() ? at::linear(h, project_out) : h, lm_head);
  }
  std::vector<AttentionBlock> attention_blocks() override;

  // Fills `layers` with every block (Whole models); a OneBlock model loads each block for each
  // forward instead.
  void load_all_layers(const Checkpoint& ckpt);

  at::Tensor token_embedding;     // [vocab, e] (e = d unless the family projects embeddings)
  at::Tensor project_in;          // [d, e] or undefined (OPT's word_embed_proj_dim)
  at::Tensor position_embedding;  // [max_positions + offset, d] or undefined (rotary)
  std::optional<Rope> rope;
  std::vector<DecoderLayer> layers;
  Norm final_norm;         // no weight: the family has no final norm (OPT-350m)
  at::Tensor project_out;  // [e, d] or undefined
  at::Tensor lm_head;      // [vocab, e]; the embedding when tied

 private:
  struct Pass;  // one batch on its way through the blocks
  Pass begin(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache, const at::Tensor& positions) const;
  void run_layer(Pass& pass, const DecoderLayer& layer, size_t l) const;
  // run_layer with its activations recomputed in backward (activation checkpointing).
  void run_layer_checkpointed(Pass& pass, const DecoderLayer& layer, size_t l) const;
  const at::Tensor& layer_mask(Pass& pass, const DecoderLayer& layer) const;
};

// Loading steps shared with T5.
Norm load_norm(const Checkpoint& ckpt, Stack s, Role weight, Role bias, int64_t layer, bool rms, double eps,
               const Placement& p);
FeedForward load_feed_forward(const Checkpoint& ckpt, Stack s, int64_t layer, const Placement& p);
at::Tensor load_lm_head(const Checkpoint& ckpt, const at::Tensor& token_embedding, const Placement& p);

// Block `layer` of a decoder-only model, as its family's FamilySpec plans it.
DecoderLayer load_decoder_layer(const Checkpoint& ckpt, int64_t layer, const Placement& p);
// Any decoder-only family; `blocks` false builds the shell only (OneBlock).
std::unique_ptr<Model> build_decoder_lm(const Checkpoint& ckpt, const Placement& p, bool blocks);

}  // namespace gqa
