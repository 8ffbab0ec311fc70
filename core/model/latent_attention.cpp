#include "core/model/latent_attention.h"

#include "core/model/attention.h"

namespace gqa {

AttentionLayout LatentAttention::layout() const {
  AttentionLayout l = AttentionLayout::even(int(n_heads), 1, int(nope_dims + rope_dims), int(value_dims));
  l.latent_rank = int(rank);
  l.latent_rope_dims = int(rope_dims);
  return l;
}

at::Tensor LatentAttention::self_attention(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& positions,
                                           KVCache* cache, size_t layer) const {
  const int64_t B = x.size(0), T = x.size(1);
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

  // Absorb the up-projections: per head B_k [nope, rank] and B_v [v, rank] rows of kv_b.
  const at::Tensor up = kv_b.weight.view({n_heads, nope_dims + value_dims, rank});
  const at::Tensor b_k = up.narrow(1, 0, nope_dims), b_v = up.narrow(1, nope_dims, value_dims);
  const at::Tensor q_latent = at::matmul(qh.narrow(-1, 0, nope_dims), b_k);  // [B, n, T, rank]
  const at::Tensor query = at::cat({q_latent, q_pe}, -1);
  const at::Tensor mixed = grouped_attention(query, keys, values, mask, /*causal=*/!mask.defined(), scale);
  at::Tensor heads = at::matmul(mixed, b_v.transpose(1, 2));  // [B, n, T, v]
  if (kv_b.bias.defined())
    heads = heads + kv_b.bias.view({n_heads, nope_dims + value_dims}).narrow(1, nope_dims, value_dims).unsqueeze(1);
  return o(heads.transpose(1, 2).reshape({B, T, n_heads * value_dims}));
}

}  // namespace gqa
