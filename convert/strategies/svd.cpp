// svd (low-rank KV compression folded into GQA; Yu et al., "Effectively Compress KV Heads for
// LLM", arXiv 2406.07056): each group's stacked key (value) outputs are replaced by their best
// rank-head_dim approximation. The shared KV head is that subspace's projection; the map from it
// back to head h's own key (value) folds into h's query rows (output columns), so the result is a
// plain GQA block with the KV cache of mean pooling.
//
// Statistics: with calibration, the key/value input X (tokens x d) enters through its augmented
// Gram G^ = [[X^T X, X^T 1], [1^T X, N]], and the weights through [W_h | b_h], so biases are part of
// the fit; K_g = X^ W_g^T and |K_g U|^2 = tr(U^T W_g G^ W_g^T U). Without calibration G^ = I:
// plain weight-space SVD of the stacked [W_h | b_h].
//
// Keys without RoPE and values: U = top head_dim eigenvectors of M = W_g G^ W_g^T (m*dh x m*dh),
// shared head U^T W_g, B_h = rows of U for head h (k_h ~ B_h k_s); q_h . B_h k_s = (B_h^T q_h) . k_s
// so W_q,h <- B_h^T W_q,h; values: O_h <- O_h B_h.
//
// Keys with RoPE (rotate-half: pair j is (j, j + dh/2)): the rotation multiplies pair j of every
// head by the same unit complex number, so only a per-pair complex scalar commutes with it. Head
// h's pair j is z_h = a_h . x^ with complex row a_h = W^_h[j] + i W^_h[j + dh/2]; over tokens the
// group's pairs z = A x^ (A: m x (d+1)) have second moment C = sum z z^H = A G^ A^H (Hermitian).
// Its top eigenvector u (unit) keeps |u^H z|^2 = u^H C u, the most of any rank-1 z ~ u s. Shared
// pair s = u^H z = sum_h conj(u_h) a_h . x^; head h's pair ~ u_h s, and since the dot product of
// pairs is Re(conj(q) k), Re(conj(q) u_h s) = Re(conj(conj(u_h) q) s): head h's query pair is
// multiplied by conj(u_h). (C must be A G^ A^H, not its conjugate conj(A) G^ A^T: with the latter
// the same s and fold keep less than the optimum; tests/convert/test_svd.cpp checks optimality.)
// Exact with one head per group and with identical heads in a group.
//
// Basis: the fit fixes subspaces, not bases; strategy_svd picks the one closest to mean pooling
// (see RealFit), so one head per group and identical heads come out with their own weights.
// Report: mean over groups of the kept fraction of K and V output energy (top eigenvalues / trace).
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <stdexcept>

#include "convert/blas.h"
#include "convert/grouping.h"
#include "convert/strategy.h"

namespace gqa {
namespace {

using MatD = Eigen::MatrixXd;
using MatC = Eigen::MatrixXcd;
using VecC = Eigen::VectorXcd;

struct Energy {
  double kept = 0, total = 0;
  double ratio() const { return total > 0 ? kept / total : 1.0; }
};

// Real fit of one group: stacked [m*dh, d+1] weights -> U [m*dh, dh] (orthonormal columns), the
// top eigenvectors of M = stacked G^ stacked^T; `stacked_gram` is stacked G^.
MatD top_subspace(const MatD& stacked, const MatD& stacked_gram, int64_t dh, Energy* e) {
  MatD m = stacked_gram * stacked.transpose();
  m = (m + m.transpose()) / 2;
  Eigen::SelfAdjointEigenSolver<MatD> eig(m);
  if (eig.info() != Eigen::Success) throw std::runtime_error("svd: eigendecomposition failed");
  // Eigenvalues ascend: the top dh are the last columns (largest first).
  MatD u = eig.eigenvectors().rightCols(dh).rowwise().reverse();
  e->kept += eig.eigenvalues().tail(dh).cwiseMax(0.0).sum();
  e->total += m.trace();
  return u;
}

// The fit fixes a subspace, not a basis: U R (R orthogonal), with the shared head scaled by 1/c and
// B_h by c, is the same function. The canonical basis makes B_h as close to the identity as it can
// be: R maximises tr(sum_h U_h R) (orthogonal Procrustes: R = Q P^T for sum_h U_h = P S Q^T) and
// c = sqrt(m), so identical heads give B_h = I with their own weights as the shared head (mean
// pooling), and a group of one keeps its weights. It also makes the result independent of which
// vectors the eigensolver returns inside a repeated eigenvalue (tied heads).
struct RealFit {
  MatD b;       // [m*dh, dh]: B_h = rows of head h (k_h ~ B_h k_s)
  MatD shared;  // [dh, d+1]: augmented shared head
};

RealFit fit_real(const MatD& stacked, const MatD& stacked_gram, int64_t dh, bool canonical_basis, Energy* e) {
  const int64_t m = stacked.rows() / dh;
  MatD u = top_subspace(stacked, stacked_gram, dh, e);
  if (!canonical_basis) return {u, u.transpose() * stacked};
  MatD sum = MatD::Zero(dh, dh);
  for (int64_t i = 0; i < m; ++i) sum += u.middleRows(i * dh, dh);
  Eigen::JacobiSVD<MatD> svd(sum, Eigen::ComputeFullU | Eigen::ComputeFullV);
  u = u * (svd.matrixV() * svd.matrixU().transpose());
  const double c = std::sqrt(double(m));
  return {c * u, (u.transpose() * stacked) / c};
}

}  // namespace

// strategy_svd with a choice of basis for the real fits: canonical (above) or the eigenvectors as
// the solver returns them (the paper's U; a dense rotation even for one head per group). Not in
// strategy.h: tests use the raw basis to show that a dense fold breaks RoPE models.
StrategyOutput svd_fold(const StrategyInput& in, bool canonical_basis);

StrategyOutput svd_fold(const StrategyInput& in, bool canonical_basis) {
  const AttentionWeights& mha = in.mha;
  const AttentionLayout& l = mha.layout;
  const int64_t d = mha.d_model(), dqk = l.head_dim_qk, dv = l.head_dim_v;
  if (l.n_kv != l.n_q) throw std::logic_error("svd: expects the MHA form of a block");
  // Rotary dims fold pair by pair (complex), the dims past them (partial rotary) as values do.
  const int64_t turned = in.rope ? (in.rotary_dims > 0 ? in.rotary_dims : dqk) : 0, passed = dqk - turned;
  if (turned % 2 || turned > dqk)
    throw std::logic_error("svd: rotary embeddings need an even number of dims within the head");
  const auto members = group_members(in.group_of);
  const MatD gram = augmented_gram(in.calib, d);

  AttentionWeights out = mha;
  out.layout.group_of = in.group_of;
  out.layout.n_kv = int(members.size());
  out.k = Matrix::Zero(out.layout.n_kv * dqk, d);
  out.v = Matrix::Zero(out.layout.n_kv * dv, d);
  if (mha.k_bias.size()) out.k_bias = Vector::Zero(out.layout.n_kv * dqk);
  if (mha.v_bias.size()) out.v_bias = Vector::Zero(out.layout.n_kv * dv);

  double k_ratio = 0, v_ratio = 0;
  for (size_t g = 0; g < members.size(); ++g) {
    const std::vector<int>& heads = members[g];
    const int64_t m = int64_t(heads.size());

    // Values (never rotated): real fit, fold into the output projection's columns.
    {
      MatD stacked(m * dv, d + 1);
      for (int64_t i = 0; i < m; ++i)
        stacked.middleRows(i * dv, dv) = augmented_rows(mha.v, mha.v_bias, heads[size_t(i)] * dv, dv);
      Energy e;
      const RealFit fit = fit_real(stacked, in.calib ? multiply(stacked, gram) : stacked, dv, canonical_basis, &e);
      set_augmented_rows(fit.shared, out.v, out.v_bias, int64_t(g) * dv);
      for (int64_t i = 0; i < m; ++i) {
        const int h = heads[size_t(i)];
        out.o_head(h) = (mha.o_head(h).cast<double>() * fit.b.middleRows(i * dv, dv)).cast<float>();
      }
      v_ratio += e.ratio();
    }

    // Keys.
    MatD stacked(m * dqk, d + 1);
    for (int64_t i = 0; i < m; ++i)
      stacked.middleRows(i * dqk, dqk) = augmented_rows(mha.k, mha.k_bias, heads[size_t(i)] * dqk, dqk);
    const MatD stacked_gram = in.calib ? multiply(stacked, gram) : stacked;
    Energy e;
    MatD shared(dqk, d + 1);
    std::vector<MatD> queries;  // augmented query rows of each member, folded in place
    for (int h : heads) queries.push_back(augmented_rows(mha.q, mha.q_bias, int64_t(h) * dqk, dqk));
    if (passed > 0) {  // dims no rotation touches: a real fit, as the values
      MatD rows(m * passed, d + 1), rows_gram(m * passed, d + 1);
      for (int64_t i = 0; i < m; ++i) {
        rows.middleRows(i * passed, passed) = stacked.middleRows(i * dqk + turned, passed);
        rows_gram.middleRows(i * passed, passed) = stacked_gram.middleRows(i * dqk + turned, passed);
      }
      const RealFit fit = fit_real(rows, rows_gram, passed, canonical_basis, &e);
      shared.bottomRows(passed) = fit.shared;
      for (int64_t i = 0; i < m; ++i) {
        MatD& q = queries[size_t(i)];
        q.bottomRows(passed) = fit.b.middleRows(i * passed, passed).transpose() * q.bottomRows(passed);
      }
    }
    if (turned > 0) {
      const int64_t half = turned / 2;
      for (int64_t j = 0; j < half; ++j) {
        MatC a(m, d + 1), ag(m, d + 1);  // complex rows a_h and a_h G^
        for (int64_t i = 0; i < m; ++i) {
          a.row(i).real() = stacked.row(i * dqk + j);
          a.row(i).imag() = stacked.row(i * dqk + j + half);
          ag.row(i).real() = stacked_gram.row(i * dqk + j);
          ag.row(i).imag() = stacked_gram.row(i * dqk + j + half);
        }
        MatC c = ag * a.adjoint();  // sum over tokens of z z^H, z = A x^
        c = (c + c.adjoint()) / 2.0;
        Eigen::SelfAdjointEigenSolver<MatC> eig(c);
        if (eig.info() != Eigen::Success) throw std::runtime_error("svd: eigendecomposition failed");
        VecC u = eig.eigenvectors().col(m - 1);
        // Fix the free phase: sum_h u_h real and positive (u = 1 for a group of one), else the
        // largest entry.
        std::complex<double> ref = u.sum();
        if (std::abs(ref) < 1e-6) {
          Eigen::Index k = 0;
          u.cwiseAbs().maxCoeff(&k);
          ref = u[k];
        }
        u *= std::conj(ref) / std::abs(ref);
        e.kept += std::max(eig.eigenvalues()[m - 1], 0.0);
        e.total += c.trace().real();
        // As for the real fit, scale by sqrt(m) so identical heads keep their weights: head h's
        // pair ~ (sqrt(m) u_h) (s / sqrt(m)).
        const Eigen::RowVectorXcd s = (u.adjoint() * a) / std::sqrt(double(m));  // sum_h conj(u_h) a_h
        u *= std::sqrt(double(m));
        shared.row(j) = s.real();
        shared.row(j + half) = s.imag();
        for (int64_t i = 0; i < m; ++i) {
          MatD& q = queries[size_t(i)];
          const std::complex<double> f = std::conj(u[i]);
          const Eigen::RowVectorXd re = q.row(j), im = q.row(j + half);
          q.row(j) = f.real() * re - f.imag() * im;
          q.row(j + half) = f.real() * im + f.imag() * re;
        }
      }
    }
    set_augmented_rows(shared, out.k, out.k_bias, int64_t(g) * dqk);
    for (int64_t i = 0; i < m; ++i)
      set_augmented_rows(queries[size_t(i)], out.q, out.q_bias, int64_t(heads[size_t(i)]) * dqk);
    k_ratio += e.ratio();
  }

  const double n = double(members.size());
  char line[160];
  std::snprintf(line, sizeof line, "kept energy K %.1f%% V %.1f%% (%s%s)", 100 * k_ratio / n, 100 * v_ratio / n,
                in.calib ? "calibration" : "weights", in.rope ? ", rope pairs" : "");
  return {std::move(out), {}, {}, line};
}

StrategyOutput strategy_svd(const StrategyInput& in) { return svd_fold(in, true); }

}  // namespace gqa
