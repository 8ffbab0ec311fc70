// Multi-head latent attention (MLA; DeepSeek-V2, arXiv 2405.04434): the runtime of the blocks
// convert/latent.* writes. Per token the block caches only [c | k_pe]: a latent c of `rank` dims
// and one rotary key k_pe of `rope_dims` dims, both shared by every head. Head h scores
//     q_nope_h . (B_k,h c) + q_pe_h . k_pe  =  [q_nope_h B_k,h | q_pe_h] . [c | k_pe]
// and reads B_v,h c, so the up-projections B_k,h and B_v,h are absorbed into the query and the
// output: every step is a one-KV-head (MQA) attention over the cache itself, whose values are its
// first `rank` dims (grouped_attention, the kernel every other block uses). Prefill and training
// take the same path: at the project's sizes the absorbed scores (rank + rope_dims per head)
// cost less than expanding K and V for every head would save.
// The up-projection's key bias adds q_nope_h . b_k,h to every score of a query alike, which the
// softmax cancels, so it is dropped; its value bias passes through the softmax's weights (they sum
// to 1) and is added after it.
#pragma once
#include <ATen/ATen.h>

#include "core/arch.h"
#include "core/config.h"
#include "core/model/kv_cache.h"
#include "core/model/layers.h"

namespace gqa {

struct LatentAttention {
  Linear q;     // [n*(nope + rope), d]: per head its nope rows, then its rope rows
  Linear kv_a;  // [rank + rope, d]: the latent, then the shared rotary key
  Linear kv_b;  // [n*(nope + v), rank]: per head its key (nope) rows, then its value rows
  Linear o;     // [d, n*v]
  int64_t n_heads = 0, nope_dims = 0, rope_dims = 0, rank = 0, value_dims = 0;
  double scale = 1.0;        // the source block's softmax scale
  at::Tensor rope_inv_freq;  // [rope_dims/2] float32: each rotary slot's frequency (rotate-half pairs)

  // The layout a config and KVCache give this block.
  AttentionLayout layout() const;
  // Self-attention over x [B, T, d] whose tokens sit at `positions` [B, T], continuing `cache`
  // (slot `layer`) when given; `mask` as Attention::self_attention's (undefined = causal over x).
  at::Tensor self_attention(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& positions, KVCache* cache,
                            size_t layer) const;
  // Cross-attention (T5's decoder; no rotary key): the memory's latent [B, 1, S, rank], made once
  // per batch, is all a decoding step keeps of the encoder output.
  at::Tensor project_memory(const at::Tensor& memory) const;
  at::Tensor cross_attention(const at::Tensor& x, const at::Tensor& memory_latent, const at::Tensor& mask) const;

 private:
  // Heads' queries absorbed into the latent: [q_nope_h B_k,h | q_pe_h] -> attention over the
  // entries -> B_v,h (+ value bias) -> o.
  at::Tensor attend_absorbed(const at::Tensor& q_nope, const at::Tensor& q_pe, const at::Tensor& keys,
                             const at::Tensor& values, const at::Tensor& mask, bool causal) const;
};

// Loads a latent block (module, layer) as the config's gqa_latent fields describe it; `model_inv_freq`
// is the model's rotary frequencies per pair (undefined without RoPE), of which the block's slots
// turn at the pairs its layout names.
LatentAttention load_latent_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer, double scale,
                                      const at::Tensor& model_inv_freq, const Placement& p);

}  // namespace gqa
