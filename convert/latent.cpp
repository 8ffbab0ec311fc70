#include "convert/latent.h"

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "convert/blas.h"

namespace gqa {
namespace {

using MatD = Eigen::MatrixXd;
using MatC = Eigen::MatrixXcd;
using VecC = Eigen::VectorXcd;

// Turns complex pair (re, im) of augmented rows by f: the query side of a shared rotary key.
void turn_pair(const MatD& source, int64_t re, int64_t im, std::complex<double> f, MatD& dest, int64_t dest_re,
               int64_t dest_im) {
  const Eigen::RowVectorXd a = source.row(re), b = source.row(im);
  dest.row(dest_re) = f.real() * a - f.imag() * b;
  dest.row(dest_im) = f.real() * b + f.imag() * a;
}

// One source RoPE pair across the heads: the eigenvectors of its key second moment, largest
// first, with the eigenvalues and each head's query energy on the pair.
struct PairFit {
  MatC a;                        // [n, d+1]: head h's complex key row a_h (pair j: rows j + i (j + half))
  MatC u;                        // [n, n]: eigenvectors u_c as columns, largest eigenvalue first
  Eigen::VectorXd key_energy;    // [n]: eigenvalues, largest first
  Eigen::VectorXd query_energy;  // [n]: E|q_h pair j|^2
};

// Slots the rotary key keeps: (pair, component) in pair order, components largest first.
struct Slot {
  int pair = 0;
  int component = 0;
};

std::vector<Slot> choose_slots(const std::vector<PairFit>& fits, int64_t slots, int n) {
  const int64_t pairs = int64_t(fits.size());
  std::vector<Slot> chosen;
  if (slots % pairs == 0) {  // every pair the same number of components (FreqFold-like, deepseek_v3 at 1)
    for (int j = 0; j < int(pairs); ++j)
      for (int c = 0; c < int(slots / pairs); ++c) chosen.push_back({j, c});
    return chosen;
  }
  struct Candidate {
    double score;
    Slot slot;
  };
  std::vector<Candidate> all;
  for (int j = 0; j < int(pairs); ++j)
    for (int c = 0; c < n; ++c) {
      const PairFit& f = fits[size_t(j)];
      double query = 0;
      for (int h = 0; h < n; ++h) query += std::norm(f.u(h, c)) * f.query_energy[h];
      all.push_back({std::sqrt(std::max(f.key_energy[c], 0.0) * std::max(query, 0.0)), {j, c}});
    }
  std::stable_sort(all.begin(), all.end(), [](const Candidate& x, const Candidate& y) { return x.score > y.score; });
  for (int64_t i = 0; i < slots; ++i) chosen.push_back(all[size_t(i)].slot);
  std::sort(chosen.begin(), chosen.end(), [](const Slot& x, const Slot& y) {
    return x.pair != y.pair ? x.pair < y.pair : x.component < y.component;
  });
  return chosen;
}

// Top-`rank` orthonormal directions of the outputs W x over inputs of covariance `cov` (identity
// when empty), through the d x d side: P = W cov^(1/2), eig(P^T P) = V L, U = P V L^(-1/2). A
// direction with no energy (rank beyond the outputs' own) stays a zero column: the latent dim is
// then unused, and U U^T is still the projector onto what the outputs span.
MatD top_output_directions_dense(const MatD& w, const MatD& cov, int64_t rank, double* kept, double* total) {
  MatD p = w;
  if (cov.size()) {
    Eigen::SelfAdjointEigenSolver<MatD> c(cov);
    if (c.info() != Eigen::Success) throw std::runtime_error("latent: eigendecomposition failed");
    const MatD root =
        c.eigenvectors() * c.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal() * c.eigenvectors().transpose();
    p = multiply(w, root);
  }
  MatD n = multiply(p.transpose(), p);
  n = (n + n.transpose()) / 2;
  Eigen::SelfAdjointEigenSolver<MatD> eig(n);
  if (eig.info() != Eigen::Success) throw std::runtime_error("latent: eigendecomposition failed");
  const int64_t d = n.rows();
  const double largest = std::max(eig.eigenvalues()[d - 1], 0.0);
  int64_t used = 0;  // no energy left (or none at all) past `used`: unused latent dims
  while (used < std::min(rank, d) && eig.eigenvalues()[d - 1 - used] > 1e-12 * largest) ++used;
  *kept = eig.eigenvalues().tail(used).sum();
  const Eigen::VectorXd scale = eig.eigenvalues().tail(used).reverse().cwiseSqrt().cwiseInverse();
  MatD u = MatD::Zero(w.rows(), rank);
  u.leftCols(used) = multiply(p, eig.eigenvectors().rightCols(used).rowwise().reverse()) * scale.asDiagonal();
  *total = n.trace();
  return u;
}

// The same directions as the top eigenvectors of M = W cov W^T, found by randomized subspace
// iteration (Halko, Martinsson & Tropp 2011, Algorithm 4.4: a Gaussian start of rank + 32
// columns, kPowerIterations products M Q each re-orthonormalised, then the small eigenproblem
// Q^T M Q). Every product goes to BLAS and nothing of size d x d is decomposed: at Llama-2-7B's
// shape (W 8192 x 4097) the dense path's two 4097 x 4097 eigendecompositions take minutes per
// block on Eigen's single thread (docs/benchmarks.md).
constexpr int kOversample = 32, kPowerIterations = 4;

MatD top_output_directions_randomized(const MatD& w, const MatD& cov, int64_t rank, double* kept, double* total) {
  const int64_t r = w.rows(), k = std::min<int64_t>(rank + kOversample, r);
  const auto apply = [&](const MatD& q) {  // M q = W (cov (W^T q))
    const MatD wq = multiply(w.transpose(), q);
    return multiply(w, cov.size() ? multiply(cov, wq) : wq);
  };
  // CholeskyQR2 (two passes of Q = Y R^-1, R^T R = Y^T Y): its products go to BLAS, where a
  // Householder QR runs on Eigen's single thread (at Llama-3.2-1B's shape, 4096 x 928: most of
  // a block's fit). A Y too ill-conditioned for Cholesky falls back to Householder.
  const auto orthonormal = [](const MatD& y) {
    MatD q = y;
    for (int pass = 0; pass < 2; ++pass) {
      Eigen::LLT<MatD> chol(multiply(q.transpose(), q));
      if (chol.info() != Eigen::Success) {
        Eigen::HouseholderQR<MatD> qr(y);
        return MatD(qr.householderQ() * MatD::Identity(y.rows(), y.cols()));
      }
      const MatD r_inverse = chol.matrixU().solve(MatD::Identity(q.cols(), q.cols()));
      q = multiply(q, r_inverse);
    }
    return q;
  };
  std::mt19937_64 rng(20250212);  // fixed: a conversion is reproducible
  std::normal_distribution<double> normal;
  MatD q(r, k);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t i = 0; i < r; ++i) q(i, j) = normal(rng);
  for (int it = 0; it < kPowerIterations; ++it) q = orthonormal(apply(q));
  MatD b = multiply(q.transpose(), apply(q));
  b = (b + b.transpose()) / 2;
  Eigen::SelfAdjointEigenSolver<MatD> eig(b);
  if (eig.info() != Eigen::Success) throw std::runtime_error("latent: eigendecomposition failed");
  const double largest = std::max(eig.eigenvalues()[k - 1], 0.0);
  int64_t used = 0;  // directions with energy; the rest stay zero columns (unused latent dims)
  while (used < std::min(rank, k) && eig.eigenvalues()[k - 1 - used] > 1e-12 * largest) ++used;
  *kept = eig.eigenvalues().tail(used).sum();
  MatD u = MatD::Zero(r, rank);
  u.leftCols(used) = multiply(q, eig.eigenvectors().rightCols(used).rowwise().reverse());
  // trace(W cov W^T), the energy the report's fraction is of.
  *total = cov.size() ? multiply(w, cov).cwiseProduct(w).sum() : w.squaredNorm();
  return u;
}

// Exact (dense) while the block is small or the rank near its size; randomized above.
MatD top_output_directions(const MatD& w, const MatD& cov, int64_t rank, int64_t dense_limit, double* kept,
                           double* total, bool* randomized) {
  const int64_t side = std::min(w.rows(), w.cols());
  *randomized = side > dense_limit && rank + kOversample < side / 2;
  return *randomized ? top_output_directions_randomized(w, cov, rank, kept, total)
                     : top_output_directions_dense(w, cov, rank, kept, total);
}

// Rotated dims per head under the options (0 without RoPE).
int64_t turned_dims(const AttentionLayout& l, const LatentOptions& o) {
  return o.rope ? (o.rotary_dims > 0 ? o.rotary_dims : l.head_dim_qk) : 0;
}

}  // namespace

AttentionLayout LatentAttentionWeights::layout() const {
  return AttentionLayout::latent(n_heads, int(nope_dims), int(rope_dims), int(value_dims), int(rank), rope_pairs);
}

AttentionLayout latent_layout(const AttentionLayout& source, const LatentOptions& o) {
  const int64_t turned = turned_dims(source, o);
  // Every component of every pair fits in the rotary key only when D = heads x rotary dims; below
  // that, each head keeps its rotary dims in the latent too (unrotated leftovers).
  const bool leftover = o.rope_dims < int64_t(source.n_q) * turned;
  const int64_t nope = source.head_dim_qk - turned + (leftover ? turned : 0);
  return AttentionLayout::latent(source.n_q, int(nope), int(o.rope_dims), source.head_dim_v, int(o.rank));
}

LatentAttentionWeights latent_fold(const AttentionWeights& mha, const LatentOptions& o) {
  const AttentionLayout& l = mha.layout;
  if (l.n_kv != l.n_q || !l.is_mha()) throw std::logic_error("latent: expects the MHA form of a block");
  const int n = l.n_q;
  const int64_t d = mha.d_model(), dqk = l.head_dim_qk, dv = l.head_dim_v;
  const int64_t turned = turned_dims(l, o), passed = dqk - turned;
  const int64_t half = turned / 2;
  if (turned % 2 || turned > dqk) throw std::logic_error("latent: rotary dims must be even and within the head");
  if (o.rope_dims % 2 || o.rope_dims < 0 || o.rope_dims > int64_t(n) * turned)
    throw std::logic_error("latent: rope dims must be even and at most heads x rotary dims");
  if (o.rank < 1) throw std::logic_error("latent: the rank must be positive");
  const bool biased = mha.k_bias.size() || mha.v_bias.size();

  const MatD gram = augmented_gram(o.calib, d);  // empty: weight space (G^ = I)
  std::vector<MatD> keys, queries;               // augmented [dqk, d+1] rows of each head
  for (int h = 0; h < n; ++h) {
    keys.push_back(augmented_rows(mha.k, mha.k_bias, int64_t(h) * dqk, dqk));
    queries.push_back(augmented_rows(mha.q, mha.q_bias, int64_t(h) * dqk, dqk));
  }

  // --- the rotary part: RoRoPE per pair, slots, leftovers ---
  std::vector<PairFit> fits(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) {
    PairFit& f = fits[size_t(j)];
    f.a.resize(n, d + 1);
    MatC q(n, d + 1);
    for (int h = 0; h < n; ++h) {
      f.a.row(h).real() = keys[size_t(h)].row(j);
      f.a.row(h).imag() = keys[size_t(h)].row(j + half);
      q.row(h).real() = queries[size_t(h)].row(j);
      q.row(h).imag() = queries[size_t(h)].row(j + half);
    }
    const MatC ag = gram.size() ? MatC(f.a * gram) : f.a;
    MatC c = ag * f.a.adjoint();  // sum over tokens of z z^H, z = A x^
    c = (c + c.adjoint()) / 2.0;
    Eigen::SelfAdjointEigenSolver<MatC> eig(c);
    if (eig.info() != Eigen::Success) throw std::runtime_error("latent: eigendecomposition failed");
    f.u = eig.eigenvectors().rowwise().reverse();
    f.key_energy = eig.eigenvalues().reverse();
    const MatC qg = gram.size() ? MatC(q * gram) : q;
    f.query_energy = (qg.cwiseProduct(q.conjugate())).rowwise().sum().real();
  }
  const std::vector<Slot> slots = half > 0 ? choose_slots(fits, o.rope_dims / 2, n) : std::vector<Slot>{};
  const int64_t D = int64_t(slots.size()) * 2;
  std::vector<int> kept_per_pair(size_t(half), 0);
  for (const Slot& s : slots) kept_per_pair[size_t(s.pair)]++;
  const bool leftover = std::any_of(kept_per_pair.begin(), kept_per_pair.end(), [&](int kept) { return kept < n; });
  const int64_t nope = passed + (leftover ? turned : 0);

  LatentAttentionWeights out;
  out.n_heads = n;
  out.rank = o.rank;
  out.rope_dims = D;
  out.nope_dims = nope;
  out.value_dims = dv;
  const bool q_biased = mha.q_bias.size() > 0;
  out.q = Matrix::Zero(int64_t(n) * (nope + D), d);
  if (q_biased) out.q_bias = Vector::Zero(out.q.rows());
  out.kv_a = Matrix::Zero(o.rank + D, d);
  if (biased) out.kv_a_bias = Vector::Zero(out.kv_a.rows());
  out.o = mha.o;
  out.o_bias = mha.o_bias;

  // Shared rotary key rows and each head's rope query rows.
  std::vector<MatD> rope_queries(size_t(n), MatD::Zero(D, d + 1));
  MatD rope_key(D, d + 1);
  double rope_kept = 0, rope_total = 0;
  for (const PairFit& f : fits) rope_total += f.key_energy.cwiseMax(0.0).sum();
  for (size_t i = 0; i < slots.size(); ++i) {
    const PairFit& f = fits[size_t(slots[i].pair)];
    const VecC u = f.u.col(slots[i].component);
    const Eigen::RowVectorXcd s = u.adjoint() * f.a;  // sum_h conj(u_h) a_h
    rope_key.row(int64_t(i)) = s.real();
    rope_key.row(int64_t(i) + D / 2) = s.imag();
    rope_kept += std::max(f.key_energy[slots[i].component], 0.0);
    for (int h = 0; h < n; ++h)
      turn_pair(queries[size_t(h)], slots[i].pair, slots[i].pair + half, std::conj(u[h]), rope_queries[size_t(h)],
                int64_t(i), int64_t(i) + D / 2);
    out.rope_pairs.push_back(slots[i].pair);
  }
  if (D > 0) set_augmented_rows(rope_key, out.kv_a, out.kv_a_bias, o.rank);

  // Per head: non-rotary key rows (passed dims, then the leftover of every pair unrotated), values.
  const int64_t per_head = nope + dv;
  MatD stacked(int64_t(n) * per_head, d + 1);
  for (int h = 0; h < n; ++h) {
    MatD& k = keys[size_t(h)];
    const int64_t row0 = int64_t(h) * per_head;
    if (passed > 0) stacked.middleRows(row0, passed) = k.bottomRows(passed);
    if (leftover) {
      for (int64_t j = 0; j < half; ++j) {
        const PairFit& f = fits[size_t(j)];
        // Head h's pair minus what the kept slots of this pair give back: ((I - U_k U_k^H) a)_h.
        Eigen::RowVectorXcd rest = f.a.row(h);
        for (const Slot& s : slots)
          if (s.pair == j) rest -= f.u(h, s.component) * (f.u.col(s.component).adjoint() * f.a);
        stacked.row(row0 + passed + j) = rest.real();
        stacked.row(row0 + passed + j + half) = rest.imag();
      }
    }
    stacked.middleRows(row0 + nope, dv) = augmented_rows(mha.v, mha.v_bias, int64_t(h) * dv, dv);
  }

  // The latent: top-R output directions of the stacked non-rotary keys and values.
  const MatD w = stacked.leftCols(d);
  const Eigen::VectorXd b = stacked.col(d);
  // With biases the fit is affine (centred covariance, the mean carried by kv_b's bias); without,
  // it is linear (second moment about 0), since the block has no bias to carry a mean.
  MatD cov;
  Eigen::VectorXd mean_out = b;  // E[W x + b]: b without calibration
  if (gram.size() && o.calib->tokens > 0) {
    const double tokens = double(o.calib->tokens);
    cov = gram.topLeftCorner(d, d) / tokens;
    if (biased) {
      const Eigen::VectorXd mean_in = gram.topRightCorner(d, 1) / tokens;
      cov -= mean_in * mean_in.transpose();
      mean_out = w * mean_in + b;
    }
  }
  double latent_kept = 0, latent_total = 0;
  bool randomized = false;
  const MatD u = top_output_directions(w, cov, o.rank, o.dense_limit, &latent_kept, &latent_total, &randomized);
  out.kv_a.topRows(o.rank) = multiply(u.transpose(), w).cast<float>();
  out.kv_b = u.cast<float>();
  if (biased) out.kv_b_bias = (mean_out - u * (u.transpose() * (mean_out - b))).cast<float>();

  // Queries: per head its non-rotary rows (in the keys' order), then its rope rows.
  for (int h = 0; h < n; ++h) {
    const MatD& q = queries[size_t(h)];
    MatD rows(nope + D, d + 1);
    if (passed > 0) rows.topRows(passed) = q.bottomRows(passed);
    if (leftover) rows.middleRows(passed, turned) = q.topRows(turned);
    if (D > 0) rows.bottomRows(D) = rope_queries[size_t(h)];
    set_augmented_rows(rows, out.q, out.q_bias, int64_t(h) * (nope + D));
  }

  char line[200];
  std::snprintf(line, sizeof line,
                "latent rank %lld kept %.1f%% of K/V energy%s; rotary key %lld dims kept %.1f%% (%s)",
                static_cast<long long>(o.rank), latent_total > 0 ? 100 * latent_kept / latent_total : 100.0,
                randomized ? " (randomized)" : "", static_cast<long long>(D),
                rope_total > 0 ? 100 * rope_kept / rope_total : 100.0, o.calib ? "calibration" : "weights");
  out.report = line;
  return out;
}

}  // namespace gqa
