#include "core/model/attention.h"

#include <cmath>

#include "core/error.h"

namespace gqa {

Rope::Rope(const RopeConfig& cfg, int64_t head_dim, const Placement& p) {
  // Same float32 arithmetic as transformers' rope init functions, so positions match bit for bit.
  at::Tensor exponents = at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / double(head_dim);
  at::Tensor inv = 1.0 / at::pow(cfg.theta, exponents);
  if (cfg.type == RopeType::Linear) inv = inv / cfg.factor;
  if (cfg.type == RopeType::Llama3) {
    const double old_len = double(cfg.original_max_positions);
    const double low_wavelen = old_len / cfg.low_freq_factor, high_wavelen = old_len / cfg.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / cfg.factor, inv);
    at::Tensor smooth = (old_len / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / cfg.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = at::where(medium, smoothed, scaled);
  }
  inv_freq = inv.to(p.device);
}

std::pair<at::Tensor, at::Tensor> Rope::cos_sin(const at::Tensor& positions, at::ScalarType dtype) const {
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);             // [B, 1, T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t turned = cos.size(-1);
  if (turned < x.size(-1))  // partial rotary (GPT-NeoX): the dims past the rotary ones pass through
    return at::cat({apply(x.narrow(-1, 0, turned), cos, sin), x.narrow(-1, turned, x.size(-1) - turned)}, -1);
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

namespace {

// sum over the heads h of each group g of scale[h] * W_h (and biases), [n_q*dh, d] -> [n_kv*dh, d]
Linear pool(const Linear& stored, const at::Tensor& scale, const at::Tensor& group_index, int64_t n_kv) {
  const int64_t n_q = scale.size(0);
  const at::Tensor s = scale.to(stored.weight.scalar_type());
  at::Tensor w = stored.weight.view({n_q, -1, stored.weight.size(1)}) * s.view({n_q, 1, 1});
  Linear out;
  out.weight = at::zeros({n_kv, w.size(1), w.size(2)}, w.options()).index_add(0, group_index, w).view({-1, w.size(2)});
  if (stored.bias.defined()) {
    at::Tensor b = stored.bias.view({n_q, -1}) * s.view({n_q, 1});
    out.bias = at::zeros({n_kv, b.size(1)}, b.options()).index_add(0, group_index, b).view({-1});
  }
  return out;
}

}  // namespace

Linear Attention::key_projection() const { return k_scale.defined() ? pool(k, k_scale, group_index, layout.n_kv) : k; }
Linear Attention::value_projection() const {
  return v_scale.defined() ? pool(v, v_scale, group_index, layout.n_kv) : v;
}

at::Tensor Attention::split_heads(const at::Tensor& y, int64_t n, int64_t d) {
  return y.view({y.size(0), y.size(1), n, d}).transpose(1, 2);
}

namespace {

// Query heads [q_begin, q_begin + (kv_end - kv_begin) * group) read KV heads [kv_begin, kv_end),
// `group` consecutive query heads per KV head.
struct EvenRun {
  int kv_begin, kv_end, q_begin, group;
};

// An uneven layout whose groups are in head order (e.g. sizes 2,2,1,1,1,1 for 8 query heads) as a
// few even runs; empty when the query heads are not in KV-head order (permuted groups).
std::vector<EvenRun> even_runs(const AttentionLayout& l) {
  for (int h = 1; h < l.n_q; ++h)
    if (l.group_of[h] != l.group_of[h - 1] && l.group_of[h] != l.group_of[h - 1] + 1) return {};
  if (l.group_of.empty() || l.group_of[0] != 0) return {};
  const std::vector<int> sizes = l.group_sizes();
  std::vector<EvenRun> runs;
  int q = 0;
  for (int j = 0; j < l.n_kv; q += sizes[j], ++j) {
    if (!runs.empty() && runs.back().group == sizes[j])
      ++runs.back().kv_end;
    else
      runs.push_back({j, j + 1, q, sizes[j]});
  }
  return runs;
}

}  // namespace

at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                             bool causal, double scale) {
  const int64_t B = q.size(0), n_kv = k.size(1), g = q.size(1) / n_kv, T = q.size(2);
  const std::optional<at::Tensor> mask_or_none = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  if (g == 1) return at::scaled_dot_product_attention(q, k, v, mask_or_none, 0.0, causal, scale);
  if (mask.defined() && mask.size(1) == 1) {
    // Each KV head serves g query heads: fold the group into the query length, [B, n_kv, g*T, d],
    // so attention reads every K/V head once and never materialises repeated heads (the CPU
    // kernels of SDPA's enable_gqa repeat them). The mask is shared by the heads of a group.
    at::Tensor qg = q.reshape({B, n_kv, g * T, q.size(3)});
    at::Tensor mg = mask.unsqueeze(2).expand({B, 1, g, T, mask.size(3)}).reshape({B, 1, g * T, mask.size(3)});
    return at::scaled_dot_product_attention(qg, k, v, mg, 0.0, false, scale).view({B, n_kv * g, T, v.size(3)});
  }
  return at::scaled_dot_product_attention(q, k, v, mask_or_none, 0.0, causal, scale, /*enable_gqa=*/true);
}

at::Tensor Attention::attend_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& mask, bool causal) const {
  if (layout.is_mha() || layout.is_contiguous_even()) return grouped_attention(q, k, v, mask, causal, scale);
  // Uneven groups in head order: one even attention per run of equal group sizes, on views of K/V.
  // (Gathering a KV head per query head instead copies an MHA-sized cache every decode step: 0.54x
  // MHA's speed at batch 512 for 6 KV heads of 8, examples/seed_poster.)
  const std::vector<EvenRun> runs = even_runs(layout);
  if (runs.size() == 1) return grouped_attention(q, k, v, mask, causal, scale);
  if (!runs.empty()) {
    std::vector<at::Tensor> parts;
    for (const EvenRun& r : runs) {
      const int64_t n = r.kv_end - r.kv_begin;
      // A mask of one row per head (T5's position bias) goes with its query heads.
      const at::Tensor m = mask.defined() && mask.size(1) > 1 ? mask.narrow(1, r.q_begin, n * r.group) : mask;
      parts.push_back(grouped_attention(q.narrow(1, r.q_begin, n * r.group), k.narrow(1, r.kv_begin, n),
                                        v.narrow(1, r.kv_begin, n), m, causal, scale));
    }
    return at::cat(parts, 1);
  }
  // Permuted groups: give each query head its KV head explicitly.
  const std::optional<at::Tensor> mask_or_none = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
  return at::scaled_dot_product_attention(q, k.index_select(1, group_index), v.index_select(1, group_index),
                                          mask_or_none, 0.0, causal, scale);
}

at::Tensor Attention::attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                             bool causal) const {
  // [B, n_q, T, d_v] -> [B, T, n_q * d_v]
  at::Tensor out = attend_heads(q, k, v, mask, causal)
                       .transpose(1, 2)
                       .reshape({q.size(0), q.size(2), int64_t(layout.n_q) * layout.head_dim_v});
  return o(out);
}

at::Tensor Attention::self_attention(const at::Tensor& x, const at::Tensor& mask, const Rope* rope,
                                     const std::pair<at::Tensor, at::Tensor>& cos_sin, KVCache* cache,
                                     size_t layer) const {
  at::Tensor qh = split_heads(q(x), layout.n_q, layout.head_dim_qk);
  at::Tensor kh = split_heads(key_projection()(x), layout.n_kv, layout.head_dim_qk);
  at::Tensor vh = split_heads(value_projection()(x), layout.n_kv, layout.head_dim_v);
  if (rope) {
    qh = Rope::apply(qh, cos_sin.first, cos_sin.second);
    kh = Rope::apply(kh, cos_sin.first, cos_sin.second);
  }
  if (cache) std::tie(kh, vh) = cache->append(layer, kh, vh);
  return attend(qh, kh, vh, mask, /*causal=*/!mask.defined());
}

std::pair<at::Tensor, at::Tensor> Attention::project_memory(const at::Tensor& memory) const {
  return {split_heads(key_projection()(memory), layout.n_kv, layout.head_dim_qk),
          split_heads(value_projection()(memory), layout.n_kv, layout.head_dim_v)};
}

at::Tensor Attention::cross_attention(const at::Tensor& x, const at::Tensor& mem_k, const at::Tensor& mem_v,
                                      const at::Tensor& mask) const {
  return attend(split_heads(q(x), layout.n_q, layout.head_dim_qk), mem_k, mem_v, mask);
}

Attention load_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer, double scale,
                         const Placement& p) {
  const ModelConfig& cfg = ckpt.config();
  const AttentionRoles r = attention_roles(module);
  Attention a;
  a.layout = cfg.layout(module, layer);
  if (a.layout.is_latent()) throw std::logic_error("load_attention: a latent block (load_latent_attention)");
  a.scale = scale;
  const bool weighted = cfg.weighted.count(module) && has_role(ckpt, r.stack, r.k_scale, layer);
  const int64_t d = cfg.d_model, nq = a.layout.n_q, nkv = weighted ? nq : a.layout.n_kv;  // K/V heads stored
  const int64_t dqk = a.layout.head_dim_qk, dv = a.layout.head_dim_v;
  if (weighted) {
    a.k_scale = load(ckpt, r.stack, r.k_scale, layer, {nq}, p);
    a.v_scale = load(ckpt, r.stack, r.v_scale, layer, {nq}, p);
  }
  a.q.weight = load(ckpt, r.stack, r.q, layer, {nq * dqk, d}, p);
  a.k.weight = load(ckpt, r.stack, r.k, layer, {nkv * dqk, d}, p);
  a.v.weight = load(ckpt, r.stack, r.v, layer, {nkv * dv, d}, p);
  a.o.weight = load(ckpt, r.stack, r.o, layer, {d, nq * dv}, p);
  // The name table says which families have biases; the checkpoint says whether these do.
  if (r.q_bias) a.q.bias = load_optional(ckpt, r.stack, *r.q_bias, layer, {nq * dqk}, p);
  if (r.k_bias) a.k.bias = load_optional(ckpt, r.stack, *r.k_bias, layer, {nkv * dqk}, p);
  if (r.v_bias) a.v.bias = load_optional(ckpt, r.stack, *r.v_bias, layer, {nkv * dv}, p);
  if (r.o_bias) a.o.bias = load_optional(ckpt, r.stack, *r.o_bias, layer, {d}, p);
  std::vector<int64_t> groups(a.layout.group_of.begin(), a.layout.group_of.end());
  a.group_index = at::tensor(groups, at::kLong).to(p.device);
  return a;
}

at::Tensor attention_mask(const at::Tensor& key_valid, int64_t start, int64_t T, bool causal, int64_t window) {
  const int64_t S = key_valid.size(1);
  auto opts = at::TensorOptions().device(key_valid.device()).dtype(at::kLong);
  at::Tensor q_slot = (at::arange(T, opts) + start).unsqueeze(1);  // [T, 1]
  at::Tensor k_slot = at::arange(S, opts).unsqueeze(0);            // [1, S]
  at::Tensor allow = key_valid.to(at::kBool).view({key_valid.size(0), 1, 1, S}).expand({key_valid.size(0), 1, T, S});
  if (causal) allow = allow.logical_and(k_slot <= q_slot);
  if (window > 0) allow = allow.logical_and(q_slot - k_slot < window);
  return allow.logical_or(k_slot == q_slot);
}

}  // namespace gqa
