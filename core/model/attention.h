// Grouped attention: n_q query heads read n_kv KV heads through an explicit head -> group map
// (uneven groups allowed), with separate q/k and v head dims. One implementation for every family
// and module; families differ only in scale, masks, rotary embeddings and position bias.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "core/config.h"
#include "core/model/kv_cache.h"
#include "core/model/layers.h"

namespace gqa {

// Rotary embeddings (rotate-half layout, as HF Llama), with linear and llama3 frequency scaling.
// Over the first `rotary_dims` dims of each head; GPT-NeoX's partial rotary leaves the rest as is.
struct Rope {
  at::Tensor inv_freq;  // [rotary_dims/2] float32
  Rope(const RopeConfig& cfg, int64_t rotary_dims, const Placement& p);
  // cos/sin for positions [B, T]: [B, 1, T, d] each, in the model dtype.
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, at::ScalarType dtype) const;
  // x [..., d] with cos/sin [..., r], r <= d: the first r dims turn.
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
};

struct Attention {
  Linear q, k, v, o;
  AttentionLayout layout;
  double scale = 1.0;
  at::Tensor group_index;  // [n_q] int64: KV head of each query head
  // WGQA (weighted folders): k and v hold one head per query head and these [n_q] scalars say how
  // each KV head pools its group's heads; the pooling runs on every forward so the scalars train.
  at::Tensor k_scale, v_scale;

  // The K/V projections with n_kv heads (pooled when weighted).
  Linear key_projection() const;
  Linear value_projection() const;

  // x [B, T, d_model] -> heads [B, n, T, d]
  static at::Tensor split_heads(const at::Tensor& y, int64_t n, int64_t d);
  // Self-attention over x, continuing `cache` (slot `layer`) when given. `mask` is a bool
  // [B, 1, T, S] (true = attend) or an additive float [B|1, n_q, T, S]; undefined = causal over x.
  at::Tensor self_attention(const at::Tensor& x, const at::Tensor& mask, const Rope* rope,
                            const std::pair<at::Tensor, at::Tensor>& cos_sin, KVCache* cache, size_t layer) const;
  // Cross-attention over precomputed memory K/V (see project_memory).
  at::Tensor cross_attention(const at::Tensor& x, const at::Tensor& mem_k, const at::Tensor& mem_v,
                             const at::Tensor& mask) const;
  std::pair<at::Tensor, at::Tensor> project_memory(const at::Tensor& memory) const;
  // softmax(q k^T * scale + mask) v with KV heads shared across their groups -> [B, T, n_q*d_v] -> o
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                    bool causal = false) const;
  // The part of attend() before the output projection: q [B, n_q, T, d_qk] over k [B, n_kv, S, d_qk]
  // and v [B, n_kv, S, d_v] (e.g. a KVCache's views) -> [B, n_q, T, d_v]. `gqa bench decode` times
  // it alone over a filled cache.
  at::Tensor attend_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          bool causal = false) const;
};

// Attention of n_kv * g query heads q [B, n_kv*g, T, d] over n_kv KV heads k [B, n_kv, S, d],
// v [B, n_kv, S, d_v], g consecutive query heads per KV head, without repeating K/V -> [B, n_q,
// T, d_v]. `mask` as in Attention::self_attention (a bool mask may have one row for all heads).
at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                             bool causal, double scale);

// Loads q/k/v/o (+ biases where the checkpoint has them) of one attention block with the
// config's layout for that module and layer.
Attention load_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer, double scale,
                         const Placement& p);

// Which key slots each query may see: [B, 1, T, S] bool. Queries sit at slots start..start+T-1,
// keys at 0..S-1; `window` > 0 limits a causal mask to the last `window` slots (GPT-Neo local).
// Every query also sees its own slot so padded rows never become empty (no NaN).
at::Tensor attention_mask(const at::Tensor& key_valid, int64_t start, int64_t T, bool causal, int64_t window = 0);

}  // namespace gqa
