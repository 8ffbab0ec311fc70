// Decoder-only transformer shared by GPT-2, GPT-Neo and Llama: pre-norm blocks of grouped
// self-attention and a feed-forward, learned or rotary positions. The family files only fill it.
#pragma once
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
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache = nullptr,
                     const Memory* memory = nullptr, const at::Tensor& positions = {}) const override;
  std::vector<AttentionBlock> attention_blocks() override;

  at::Tensor token_embedding;     // [vocab, d]
  at::Tensor position_embedding;  // [max_positions, d] or undefined (rotary)
  std::optional<Rope> rope;
  std::vector<DecoderLayer> layers;
  Norm final_norm;
  at::Tensor lm_head;  // [vocab, d]; the embedding when tied
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
