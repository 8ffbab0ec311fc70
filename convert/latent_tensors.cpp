#include "convert/latent_tensors.h"

#include "core/arch.h"
#include "core/error.h"

namespace gqa {

std::vector<TensorToWrite> latent_tensors(const Checkpoint& in, AttentionModule module, int64_t layer,
                                          const AttentionLayout& layout, DType dtype,
                                          std::function<const LatentAttentionWeights&()> make) {
  const AttentionRoles r = attention_roles(module);
  const int64_t d = in.config().d_model, n = layout.n_q, rank = layout.latent_rank;
  const int64_t rope = layout.latent_rope_dims, nope = layout.head_dim_qk - rope, dv = layout.head_dim_v;
  auto has = [&](const std::optional<Role>& role) { return role && has_role(in, r.stack, *role, layer); };
  const bool q_bias = has(r.q_bias), kv_bias = has(r.k_bias) || has(r.v_bias), o_bias = has(r.o_bias);

  std::vector<TensorToWrite> out;
  // `part` picks the matrix (or bias, one column) of the folded block.
  auto add = [&](Role role, std::vector<int64_t> shape, bool conv1d,
                 std::function<Matrix(const LatentAttentionWeights&)> part) {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    TensorToWrite t{role == r.o || (r.o_bias && role == *r.o_bias) ? *role_tensor_name(in, r.stack, role, layer)
                                                                   : new_role_tensor_name(in, r.stack, role, layer),
                    dtype, shape, size_t(numel) * dtype_size(dtype), nullptr};
    t.fill = [make, part, numel, conv1d, name = t.name, dtype](uint8_t* dst) {
      const Matrix m = part(make());
      if (m.size() != numel) throw InputError(name, "shape", "folded block does not match the latent layout");
      store_matrix(m, conv1d, dtype, dst);
    };
    out.push_back(std::move(t));
  };
  const bool o_conv1d = locate(in.config(), r.stack, r.o, layer)->conv1d;
  add(r.latent_q, {n * (nope + rope), d}, false, [](const LatentAttentionWeights& w) { return w.q; });
  if (q_bias && r.latent_q_bias)
    add(*r.latent_q_bias, {n * (nope + rope)}, false, [](const LatentAttentionWeights& w) { return Matrix(w.q_bias); });
  add(r.kv_a, {rank + rope, d}, false, [](const LatentAttentionWeights& w) { return w.kv_a; });
  if (kv_bias && r.kv_a_bias)
    add(*r.kv_a_bias, {rank + rope}, false, [](const LatentAttentionWeights& w) { return Matrix(w.kv_a_bias); });
  add(r.kv_b, {n * (nope + dv), rank}, false, [](const LatentAttentionWeights& w) { return w.kv_b; });
  if (kv_bias && r.kv_b_bias)
    add(*r.kv_b_bias, {n * (nope + dv)}, false, [](const LatentAttentionWeights& w) { return Matrix(w.kv_b_bias); });
  add(r.o, o_conv1d ? std::vector<int64_t>{n * dv, d} : std::vector<int64_t>{d, n * dv}, o_conv1d,
      [](const LatentAttentionWeights& w) { return w.o; });
  if (o_bias) add(*r.o_bias, {d}, false, [](const LatentAttentionWeights& w) { return Matrix(w.o_bias); });
  return out;
}

}  // namespace gqa
