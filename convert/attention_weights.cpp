#include "convert/attention_weights.h"

#include <algorithm>
#include <map>

#include "convert/strategy.h"
#include "core/arch.h"
#include "core/error.h"

namespace gqa {
namespace {

Matrix to_matrix(HostTensor&& h) {
  const int64_t rows = h.shape[0], cols = h.shape.size() == 2 ? h.shape[1] : 1;
  return Eigen::Map<const Matrix>(h.data.data(), rows, cols);
}

// A role of the block as a matrix (biases as one column); null when the block lacks it.
const Matrix* part_of(const AttentionWeights& w, const AttentionRoles& r, Role role, Matrix* scratch) {
  if (role == r.q) return &w.q;
  if (role == r.k) return &w.k;
  if (role == r.v) return &w.v;
  if (role == r.o) return &w.o;
  const Vector* b = nullptr;
  if (r.q_bias && role == *r.q_bias) b = &w.q_bias;
  if (r.k_bias && role == *r.k_bias) b = &w.k_bias;
  if (r.v_bias && role == *r.v_bias) b = &w.v_bias;
  if (r.o_bias && role == *r.o_bias) b = &w.o_bias;
  if (!b || b->size() == 0) return nullptr;
  *scratch = *b;
  return scratch;
}

std::vector<Role> roles_of(const AttentionRoles& r) {
  std::vector<Role> out = {r.q, r.k, r.v, r.o};
  for (const auto& b : {r.q_bias, r.k_bias, r.v_bias, r.o_bias})
    if (b) out.push_back(*b);
  return out;
}

}  // namespace

AttentionWeights read_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer, Vector* k_scale,
                                Vector* v_scale) {
  const ModelConfig& cfg = ckpt.config();
  const AttentionRoles r = attention_roles(module);
  AttentionWeights w;
  w.layout = cfg.layout(module, layer);
  const AttentionLayout& l = w.layout;
  const int64_t d = cfg.d_model, dqk = l.head_dim_qk, dv = l.head_dim_v;
  // A weighted (WGQA) block stores one K/V head per query head and a scalar for each.
  const bool weighted = cfg.weighted.count(module) && has_role(ckpt, r.stack, r.k_scale, layer);
  const int64_t kv = weighted ? l.n_q : l.n_kv;
  w.q = to_matrix(load_role(ckpt, r.stack, r.q, layer, {l.n_q * dqk, d}));
  w.k = to_matrix(load_role(ckpt, r.stack, r.k, layer, {kv * dqk, d}));
  w.v = to_matrix(load_role(ckpt, r.stack, r.v, layer, {kv * dv, d}));
  w.o = to_matrix(load_role(ckpt, r.stack, r.o, layer, {d, l.n_q * dv}));
  auto vec = [&](const std::optional<Role>& role, int64_t n) -> Vector {
    if (!role || !has_role(ckpt, r.stack, *role, layer)) return Vector();
    return to_matrix(load_role(ckpt, r.stack, *role, layer, {n})).col(0);
  };
  w.q_bias = vec(r.q_bias, l.n_q * dqk);
  w.k_bias = vec(r.k_bias, kv * dqk);
  w.v_bias = vec(r.v_bias, kv * dv);
  w.o_bias = vec(r.o_bias, d);
  if (!weighted) return w;
  const Vector ks = vec(r.k_scale, l.n_q), vs = vec(r.v_scale, l.n_q);
  if (k_scale) *k_scale = ks;
  if (v_scale) *v_scale = vs;
  const std::vector<int> groups = l.group_of;  // l is w.layout, about to become the stored (MHA) form
  w.layout = AttentionLayout::even(l.n_q, l.n_q, int(dqk), int(dv));
  return pool_heads(w, groups, ks, vs);  // the function the runtime computes
}

AttentionWeights expand_to_mha(const AttentionWeights& w) {
  const AttentionLayout& l = w.layout;
  AttentionWeights m = w;
  m.layout = AttentionLayout::even(l.n_q, l.n_q, l.head_dim_qk, l.head_dim_v);
  m.k.resize(int64_t(l.n_q) * l.head_dim_qk, w.d_model());
  m.v.resize(int64_t(l.n_q) * l.head_dim_v, w.d_model());
  if (w.k_bias.size()) m.k_bias.resize(m.k.rows());
  if (w.v_bias.size()) m.v_bias.resize(m.v.rows());
  for (int h = 0; h < l.n_q; ++h) {
    const int g = l.group_of[size_t(h)];
    m.k_head(h) = w.k_head(g);
    m.v_head(h) = w.v_head(g);
    if (w.k_bias.size())
      m.k_bias.segment(int64_t(h) * l.head_dim_qk, l.head_dim_qk) =
          w.k_bias.segment(int64_t(g) * l.head_dim_qk, l.head_dim_qk);
    if (w.v_bias.size())
      m.v_bias.segment(int64_t(h) * l.head_dim_v, l.head_dim_v) =
          w.v_bias.segment(int64_t(g) * l.head_dim_v, l.head_dim_v);
  }
  return m;
}

Eigen::MatrixXd augmented_rows(const Matrix& w, const Vector& b, int64_t row0, int64_t rows) {
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(rows, w.cols() + 1);
  out.leftCols(w.cols()) = w.middleRows(row0, rows).cast<double>();
  if (b.size()) out.col(w.cols()) = b.segment(row0, rows).cast<double>();
  return out;
}

void set_augmented_rows(const Eigen::MatrixXd& augmented, Matrix& w, Vector& b, int64_t row0) {
  const int64_t rows = augmented.rows(), d = w.cols();
  w.middleRows(row0, rows) = augmented.leftCols(d).cast<float>();
  if (b.size()) b.segment(row0, rows) = augmented.col(d).cast<float>();
}

void store_matrix(const Matrix& linear, bool conv1d, DType dtype, uint8_t* dst) {
  const Matrix stored = conv1d ? Matrix(linear.transpose()) : linear;  // Conv1D is [in, out]
  from_float32(dtype, stored.data(), stored.size(), dst);
}

std::vector<std::string> attention_tensor_names(const Checkpoint& ckpt, AttentionModule module, int64_t layer) {
  const AttentionRoles r = attention_roles(module);
  std::vector<std::string> names;
  std::vector<Role> roles = roles_of(r);
  roles.push_back(r.k_scale);
  roles.push_back(r.v_scale);
  for (Role role : roles)
    if (auto n = role_tensor_name(ckpt, r.stack, role, layer))
      if (names.empty() || std::find(names.begin(), names.end(), *n) == names.end()) names.push_back(*n);
  return names;
}

std::vector<TensorToWrite> attention_tensors(const Checkpoint& in, const ModelConfig& cfg, AttentionModule module,
                                             int64_t layer, const AttentionLayout& layout, DType dtype,
                                             std::function<const AttentionWeights&()> make) {
  const AttentionRoles r = attention_roles(module);
  const int64_t d = cfg.d_model, dqk = layout.head_dim_qk, dv = layout.head_dim_v;
  // Rows each role has under the output layout (vectors have one column).
  auto rows_of = [&](Role role) -> int64_t {
    if (role == r.q || (r.q_bias && role == *r.q_bias)) return layout.n_q * dqk;
    if (role == r.k || (r.k_bias && role == *r.k_bias)) return layout.n_kv * dqk;
    if (role == r.v || (r.v_bias && role == *r.v_bias)) return layout.n_kv * dv;
    return d;  // o and its bias
  };
  auto cols_of = [&](Role role) -> int64_t {
    if (role == r.o) return layout.n_q * dv;
    if (role == r.q || role == r.k || role == r.v) return d;
    return 1;
  };
  // One output tensor per checkpoint name; a fused q/k/v tensor (GPT-2's c_attn, GPT-NeoX's
  // query_key_value) collects its parts in q, k, v order and lays them out by fused_qkv_runs.
  struct Out {
    std::vector<Role> parts;
    bool conv1d = false, vector = false, per_head = false;
  };
  const int64_t stored_kv_heads = rows_of(r.k) / dqk;
  std::map<std::string, Out> outs;
  std::vector<std::string> order;
  for (Role role : roles_of(r)) {
    auto name = role_tensor_name(in, r.stack, role, layer);
    if (!name) continue;
    auto loc = locate(in.config(), r.stack, role, layer);
    if (!outs.count(*name)) order.push_back(*name);
    Out& o = outs[*name];
    o.parts.push_back(role);
    o.conv1d = loc->conv1d;
    o.vector = cols_of(role) == 1;
    o.per_head = loc->fused_per_head;
  }
  std::vector<TensorToWrite> tensors;
  for (const std::string& name : order) {
    const Out o = outs[name];
    int64_t rows = 0;
    for (Role role : o.parts) rows += rows_of(role);
    const int64_t cols = cols_of(o.parts.front());
    TensorToWrite t;
    t.name = name;
    t.dtype = dtype;
    t.shape = o.vector   ? std::vector<int64_t>{rows}
              : o.conv1d ? std::vector<int64_t>{cols, rows}
                         : std::vector<int64_t>{rows, cols};
    t.nbytes = size_t(rows * cols) * dtype_size(dtype);
    std::vector<FusedRun> runs;  // one run per part unless fused per head
    if (o.parts.size() == 3) {
      runs = fused_qkv_runs(layout, stored_kv_heads, o.per_head);
    } else {
      for (size_t i = 0; i < o.parts.size(); ++i) runs.push_back({int(i), 0, rows_of(o.parts[i])});
    }
    t.fill = [o, runs, rows, cols, name, make, r, dtype](uint8_t* dst) {
      const AttentionWeights& w = make();
      Matrix full(rows, cols);
      std::vector<Matrix> scratch(o.parts.size());
      std::vector<const Matrix*> parts;
      for (size_t i = 0; i < o.parts.size(); ++i) {
        parts.push_back(part_of(w, r, o.parts[i], &scratch[i]));
        if (!parts.back()) throw InputError(name, role_name(o.parts[i]), "converted block lacks this tensor");
      }
      int64_t at = 0;
      for (const FusedRun& run : runs) {
        if (at + run.rows > rows || run.first_row + run.rows > parts[size_t(run.part)]->rows())
          throw InputError(name, "shape", "converted block does not match the output layout");
        full.middleRows(at, run.rows) = parts[size_t(run.part)]->middleRows(run.first_row, run.rows);
        at += run.rows;
      }
      if (at != rows) throw InputError(name, "shape", "converted block does not match the output layout");
      store_matrix(full, o.conv1d && !o.vector, dtype, dst);
    };
    tensors.push_back(std::move(t));
  }
  return tensors;
}

}  // namespace gqa
