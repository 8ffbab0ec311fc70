// One attention block in neutral form (design card: families and strategies meet here). A family
// only knows how to cut its tensors into these matrices and paste them back (core/arch); a
// strategy only sees heads. Plain C++ + Eigen, float32, Linear layout ([out, in]).
#pragma once
#include <Eigen/Dense>

#include <functional>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/config.h"

namespace gqa {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;

struct AttentionWeights {
  AttentionLayout layout;
  Matrix q, k, v;                         // [n_q*dqk, d], [n_kv*dqk, d], [n_kv*dv, d]
  Matrix o;                               // [d, n_q*dv]
  Vector q_bias, k_bias, v_bias, o_bias;  // size 0 when the family has none

  int64_t d_model() const { return q.cols(); }
  // Rows of one head's projection (and its bias slice).
  auto q_head(int h) { return q.middleRows(int64_t(h) * layout.head_dim_qk, layout.head_dim_qk); }
  auto k_head(int g) { return k.middleRows(int64_t(g) * layout.head_dim_qk, layout.head_dim_qk); }
  auto v_head(int g) { return v.middleRows(int64_t(g) * layout.head_dim_v, layout.head_dim_v); }
  auto o_head(int h) { return o.middleCols(int64_t(h) * layout.head_dim_v, layout.head_dim_v); }
  auto q_head(int h) const { return q.middleRows(int64_t(h) * layout.head_dim_qk, layout.head_dim_qk); }
  auto k_head(int g) const { return k.middleRows(int64_t(g) * layout.head_dim_qk, layout.head_dim_qk); }
  auto v_head(int g) const { return v.middleRows(int64_t(g) * layout.head_dim_v, layout.head_dim_v); }
  auto o_head(int h) const { return o.middleCols(int64_t(h) * layout.head_dim_v, layout.head_dim_v); }
};

// Reads a block as the checkpoint's config describes it. A weighted (WGQA) block comes back
// pooled with its scalars — the function the runtime computes — and the scalars go to
// k_scale/v_scale when given.
AttentionWeights read_attention(const Checkpoint& ckpt, AttentionModule module, int64_t layer,
                                Vector* k_scale = nullptr, Vector* v_scale = nullptr);

// The same function with one KV head per query head (KV heads repeated along their groups): the
// form every strategy starts from, and what `--export expanded` writes for vanilla transformers.
AttentionWeights expand_to_mha(const AttentionWeights& w);

// Tensors of a block under `cfg` (the output config) with `layout`, in the dtype given, named as
// in the input checkpoint `in`; GPT-2's fused c_attn is assembled from q/k/v. `make` is called when the writer needs
// the bytes, so a converter can compute blocks lazily.
std::vector<TensorToWrite> attention_tensors(const Checkpoint& in, const ModelConfig& cfg, AttentionModule module,
                                             int64_t layer, const AttentionLayout& layout, DType dtype,
                                             std::function<const AttentionWeights&()> make);

// Rows [row0, row0 + rows) of a projection with its bias as one more column, [W | b], in double
// (b = 0 when the block has none): the form in which biases join a fit through an input [x; 1].
Eigen::MatrixXd augmented_rows(const Matrix& w, const Vector& b, int64_t row0, int64_t rows);
// The inverse: writes augmented rows [rows, d+1] back from row `row0` as weight rows and, when the
// block has a bias (b non-empty), bias entries.
void set_augmented_rows(const Eigen::MatrixXd& augmented, Matrix& w, Vector& b, int64_t row0);

// Writes a matrix given in Linear layout ([out, in]; vectors as one column) as a role stores it:
// transposed for GPT-2's Conv1D roles, in `dtype`.
void store_matrix(const Matrix& linear, bool conv1d, DType dtype, uint8_t* dst);

// Names of the checkpoint tensors that belong to a block (replaced when the block is converted).
std::vector<std::string> attention_tensor_names(const Checkpoint& ckpt, AttentionModule module, int64_t layer);

}  // namespace gqa
