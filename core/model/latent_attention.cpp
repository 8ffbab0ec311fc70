#include "core/model/latent_attention.h"

#include "core/error.h"
#include "core/model/attention.h"

namespace gqa {

AttentionLayout LatentAttention::layout() const {
  return AttentionLayout::latent(int(n_heads), int(nope_dims), int(rope_dims), int(value_dims), int(rank));
}

at::Tensor LatentAttention::attend_absorbed(const at::Tensor& q_nope, const at::Tensor& q_pe, const at::Tensor& keys,
                                            const at::Tensor& values, const at::Tensor& mask, bool causal) const {
  const int64_t B = q_nope.size(0), T = q_nope.size(2);
  // Per head B_k [nope, rank] and B_v [v, rank]: rows of kv_b.
  const at::Tensor up = kv_b.weight.view({n_heads, nope_dims + value_dims, rank});
  const at::Tensor b_k = up.narrow(1, 0, nope_dims), b_v = up.narrow(1, nope_dims, value_dims);
  const at::Tensor q_latent = at::matmul(q_nope, b_k);  // [B, n, T, rank]
  const at::Tensor query = rope_dims > 0 ? at::cat({q_latent, q_pe}, -1) : q_latent;
  const at::Tensor mixed = grouped_attention(query, keys, values, mask, causal, scale);
  at::Tensor heads = at::matmul(mixed, b_v.transpose(1, 2));  // [B, n, T, v]
  if (kv_b.bias.defined())
    heads = heads + kv_b.bias.view({n_heads, nope_dims + value_dims}).narrow(1, nope_dims, value_dims).unsqueeze(1);
  return o(heads.transpose(1, 2).reshape({B, T, n_heads * value_dims}));
}

at::Tensor LatentAttention::self_attention(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& positions,
                                           KVCache* cache, size_t layer) const {
  const at::Tensor qh = Attention::split_heads(q(x), n_heads, nope_dims + rope_dims);  // [B, n, T, nope + rope]
  const at::Tensor latent = kv_a(x);                                                   // [B, T, rank + rope]
  at::Tensor q_pe = qh.narrow(-1, nope_dims, rope_dims);
  at::Tensor entry = latent.unsqueeze(1);  // [B, 1, T, rank + rope]: what the cache keeps
  if (rope_dims > 0) {
    const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * rope_inv_freq;  // [B, T, rope/2]
    const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);                  // [B, 1, T, rope]
    const at::Tensor cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
    q_pe = Rope::apply(q_pe, cos, sin);
    entry = at::cat({entry.narrow(-1, 0, rank), Rope::apply(entry.narrow(-1, rank, rope_dims), cos, sin)}, -1);
  }
  at::Tensor keys = entry, values = entry.narrow(-1, 0, rank);
  if (cache) std::tie(keys, values) = cache->append(layer, entry, values);
  return attend_absorbed(qh.narrow(-1, 0, nope_dims), q_pe, keys, values, mask, /*causal=*/!mask.defined());
}

at::Tensor LatentAttention::project_memory(const at::Tensor& memory) const { return kv_a(memory).unsqueeze(1); }

at::Tensor LatentAttention::cross_attention(const at::Tensor& x, const at::Tensor& memory_latent,
                                            const at::Tensor& mask) const {
  const at::Tensor qh = Attention::split_heads(q(x), n_heads, nope_dims);
  return attend_absorbed(qh, at::Tensor(), memory_latent, memory_latent, mask, /*causal=*/false);
}

LatentAttention load_latent_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer, double scale,
                                      const at::Tensor& model_inv_freq, const Placement& p) {
  const ModelConfig& cfg = ckpt.config();
  const AttentionLayout& l = cfg.layout(module, layer);
  const AttentionRoles r = attention_roles(module);
  LatentAttention a;
  a.n_heads = l.n_q;
  a.rank = l.latent_rank;
  a.rope_dims = l.latent_rope_dims;
  a.nope_dims = l.head_dim_qk - l.latent_rope_dims;
  a.value_dims = l.head_dim_v;
  a.scale = scale;
  const int64_t d = cfg.d_model, n = a.n_heads, rows_q = n * (a.nope_dims + a.rope_dims);
  a.q.weight = load(ckpt, r.stack, r.latent_q, layer, {rows_q, d}, p);
  a.kv_a.weight = load(ckpt, r.stack, r.kv_a, layer, {a.rank + a.rope_dims, d}, p);
  a.kv_b.weight = load(ckpt, r.stack, r.kv_b, layer, {n * (a.nope_dims + a.value_dims), a.rank}, p);
  a.o.weight = load(ckpt, r.stack, r.o, layer, {d, n * a.value_dims}, p);
  if (r.latent_q_bias) a.q.bias = load_optional(ckpt, r.stack, *r.latent_q_bias, layer, {rows_q}, p);
  if (r.kv_a_bias) a.kv_a.bias = load_optional(ckpt, r.stack, *r.kv_a_bias, layer, {a.rank + a.rope_dims}, p);
  if (r.kv_b_bias)
    a.kv_b.bias = load_optional(ckpt, r.stack, *r.kv_b_bias, layer, {n * (a.nope_dims + a.value_dims)}, p);
  if (r.o_bias) a.o.bias = load_optional(ckpt, r.stack, *r.o_bias, layer, {d}, p);
  if (a.rope_dims > 0) {
    if (!model_inv_freq.defined())
      throw InputError(cfg.path, "gqa_latent", "a rotary key in a model without rotary embeddings");
    a.rope_inv_freq = model_inv_freq.index_select(
        0, at::tensor(std::vector<int64_t>(l.latent_rope_pairs.begin(), l.latent_rope_pairs.end()), at::kLong)
               .to(model_inv_freq.device()));
  }
  return a;
}

}  // namespace gqa
