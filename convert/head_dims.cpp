#include "convert/head_dims.h"

#include <algorithm>
#include <cmath>

#include "convert/grouping.h"
#include "core/error.h"

namespace gqa {
namespace {

using MatrixD = Eigen::MatrixXd;

// Thin QR of a^T: a^T = Q R, Q [n, k] orthonormal, R [k, k].
void thin_qr(const MatrixD& a, MatrixD* q, MatrixD* r) {
  Eigen::HouseholderQR<MatrixD> qr(a.transpose());
  const int64_t k = a.rows();
  *q = qr.householderQ() * MatrixD::Identity(a.cols(), k);
  *r = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}

// One group: the shared side `shared` [dh, n] (keys or values, n = d+1 with the bias column) and
// per-head sides `heads` [dh, m] each (queries [dh, d+1], or output projections transposed
// [dh, d]). Finds shared' [r, n] and heads'_h [r, m] with heads'_h^T shared' closest to
// heads_h^T shared over all heads together (Frobenius): the rank-r SVD of the stacked forms.
void factor(const MatrixD& shared, const std::vector<MatrixD>& heads, int r, MatrixD* shared_out,
            std::vector<MatrixD>* heads_out) {
  const int64_t dh = shared.rows();
  MatrixD qb, rb;
  thin_qr(shared, &qb, &rb);
  std::vector<MatrixD> qa(heads.size()), ra(heads.size());
  MatrixD stacked(int64_t(heads.size()) * dh, dh);
  for (size_t i = 0; i < heads.size(); ++i) {
    thin_qr(heads[i], &qa[i], &ra[i]);
    // heads_h^T shared = Qa_h (Ra_h Rb^T) Qb^T: the middle factor is the form in orthonormal coordinates.
    stacked.middleRows(int64_t(i) * dh, dh) = ra[i] * rb.transpose();
  }
  Eigen::JacobiSVD<MatrixD> svd(stacked, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const MatrixD v = svd.matrixV().leftCols(r);
  const MatrixD us = svd.matrixU().leftCols(r) * svd.singularValues().head(r).asDiagonal();
  *shared_out = v.transpose() * qb.transpose();  // [r, d+1]
  heads_out->resize(heads.size());
  for (size_t i = 0; i < heads.size(); ++i)
    (*heads_out)[i] = us.middleRows(int64_t(i) * dh, dh).transpose() * qa[i].transpose();
}

}  // namespace

AttentionWeights reduce_head_dims(const AttentionWeights& w, int qk_dim, int v_dim) {
  const AttentionLayout& l = w.layout;
  if (qk_dim <= 0 || qk_dim > l.head_dim_qk)
    throw InputError("--qk-head-dim", "", "must be between 1 and " + std::to_string(l.head_dim_qk));
  if (v_dim <= 0 || v_dim > l.head_dim_v)
    throw InputError("--kv-head-dim", "", "must be between 1 and " + std::to_string(l.head_dim_v));
  const int64_t d = w.d_model(), dqk = l.head_dim_qk, dv = l.head_dim_v;
  const auto members = group_members(l.group_of);
  AttentionWeights out;
  out.layout = l;
  out.layout.head_dim_qk = qk_dim;
  out.layout.head_dim_v = v_dim;
  out.q = Matrix(int64_t(l.n_q) * qk_dim, d);
  out.k = Matrix(int64_t(l.n_kv) * qk_dim, d);
  out.v = Matrix(int64_t(l.n_kv) * v_dim, d);
  out.o = Matrix(d, int64_t(l.n_q) * v_dim);
  const bool q_bias = w.q_bias.size() || w.k_bias.size(), v_bias = w.v_bias.size() > 0;
  if (q_bias) {
    out.q_bias = Vector(out.q.rows());
    out.k_bias = Vector(out.k.rows());
  }
  if (v_bias) out.v_bias = Vector(out.v.rows());
  out.o_bias = w.o_bias;
  for (int g = 0; g < l.n_kv; ++g) {
    const auto& hs = members[size_t(g)];
    // Keys and queries: score_h = [x;1]^T Q_h^T K [y;1].
    std::vector<MatrixD> queries;
    for (int h : hs) queries.push_back(augmented_rows(w.q, w.q_bias, h * dqk, dqk));
    MatrixD k_new;
    std::vector<MatrixD> q_new;
    factor(augmented_rows(w.k, w.k_bias, g * dqk, dqk), queries, qk_dim, &k_new, &q_new);
    out.k.middleRows(int64_t(g) * qk_dim, qk_dim) = k_new.leftCols(d).cast<float>();
    if (q_bias) out.k_bias.segment(int64_t(g) * qk_dim, qk_dim) = k_new.col(d).cast<float>();
    for (size_t i = 0; i < hs.size(); ++i) {
      out.q.middleRows(int64_t(hs[i]) * qk_dim, qk_dim) = q_new[i].leftCols(d).cast<float>();
      if (q_bias) out.q_bias.segment(int64_t(hs[i]) * qk_dim, qk_dim) = q_new[i].col(d).cast<float>();
    }
    // Values and outputs: out_h = O_h [W_v | b_v] [x; 1], so O_h^T is the per-head side.
    std::vector<MatrixD> outs;
    for (int h : hs) outs.push_back(w.o.middleCols(int64_t(h) * dv, dv).transpose().cast<double>());
    MatrixD v_new;
    std::vector<MatrixD> o_new;
    factor(augmented_rows(w.v, w.v_bias, g * dv, dv), outs, v_dim, &v_new, &o_new);
    out.v.middleRows(int64_t(g) * v_dim, v_dim) = v_new.leftCols(d).cast<float>();
    if (v_bias) out.v_bias.segment(int64_t(g) * v_dim, v_dim) = v_new.col(d).cast<float>();
    for (size_t i = 0; i < hs.size(); ++i)
      out.o.middleCols(int64_t(hs[i]) * v_dim, v_dim) = o_new[i].transpose().cast<float>();
  }
  return out;
}

std::vector<int> choose_rope_pairs(const std::vector<AttentionWeights>& blocks, int n_pairs) {
  if (blocks.empty()) return {};
  const int64_t dh = blocks.front().layout.head_dim_qk, half = dh / 2;
  std::vector<double> score(size_t(half), 0.0);
  for (const AttentionWeights& w : blocks)
    for (int h = 0; h < w.layout.n_q; ++h) {
      const int g = w.layout.group_of[size_t(h)];
      for (int64_t f = 0; f < half; ++f) {
        auto pair_norm = [&](const Matrix& m, const Vector& b, int64_t head) {
          const MatrixD rows = augmented_rows(m, b, head * dh, dh);
          return std::sqrt(rows.row(f).squaredNorm() + rows.row(f + half).squaredNorm());
        };
        score[size_t(f)] += pair_norm(w.q, w.q_bias, h) * pair_norm(w.k, w.k_bias, g);
      }
    }
  std::vector<int> order(static_cast<size_t>(half));
  for (int64_t f = 0; f < half; ++f) order[size_t(f)] = int(f);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[size_t(a)] > score[size_t(b)]; });
  std::vector<int> kept(order.begin(), order.begin() + n_pairs);
  std::sort(kept.begin(), kept.end());
  return kept;
}

AttentionWeights keep_rope_pairs(const AttentionWeights& w, const std::vector<int>& pairs) {
  const int64_t dh = w.layout.head_dim_qk, half = dh / 2, r = 2 * int64_t(pairs.size());
  std::vector<int64_t> rows;  // within a head: kept first halves, then their partners
  for (int f : pairs) rows.push_back(f);
  for (int f : pairs) rows.push_back(f + half);
  AttentionWeights out = w;
  out.layout.head_dim_qk = int(r);
  auto select = [&](const Matrix& m, const Vector& b, int heads, Matrix* mo, Vector* bo) {
    *mo = Matrix(heads * r, m.cols());
    if (b.size()) *bo = Vector(heads * r);
    for (int h = 0; h < heads; ++h)
      for (int64_t i = 0; i < r; ++i) {
        mo->row(h * r + i) = m.row(h * dh + rows[size_t(i)]);
        if (b.size()) (*bo)[h * r + i] = b[h * dh + rows[size_t(i)]];
      }
  };
  select(w.q, w.q_bias, w.layout.n_q, &out.q, &out.q_bias);
  select(w.k, w.k_bias, w.layout.n_kv, &out.k, &out.k_bias);
  return out;
}

}  // namespace gqa
