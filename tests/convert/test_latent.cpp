// Latent attention (MLA) fold, convert/latent.*: the latent block's attention output equals the
// MHA block's at full rank (R = d_model, D = every rotary dim of every head) with and without
// RoPE, partial rotary and biases, with and without calibration; tied heads are exact with the
// deepseek_v3 layout (D = rotary dims); below full rank the K/V reconstruction error never grows
// with the rank. Plain Eigen references, no torch: the runtime's block is tested against these.
#include "convert/latent.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/convert/random_block.h"

namespace gqa {
namespace {

using MatD = Eigen::MatrixXd;

struct Block {
  AttentionWeights w;
  int64_t rotary = 0;  // rotated dims per head (0: no RoPE)
};

Block random_block(int n, int64_t dh, int64_t d, int64_t rotary, bool biases, uint32_t seed, bool tied = false) {
  return {test::random_mha_block(n, dh, d, biases, seed, tied), rotary};
}

MatD random_tokens(int64_t t, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.3, 1.0);  // non-zero mean: biases and centring matter
  MatD x(t, d);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  return x;
}

BlockCalibration calibration_of(const MatD& x) {
  BlockCalibration c;
  c.input_gram = (x.transpose() * x).cast<float>();
  c.input_sum = x.colwise().sum().transpose().cast<float>();
  c.tokens = x.rows();
  return c;
}

// Rotate-half RoPE over the first 2*freqs.size() dims of `v` at position `pos`: pair i is
// (i, i + half), turning at freqs[i].
void rope(Eigen::Ref<Eigen::VectorXd> v, const std::vector<double>& freqs, int64_t pos) {
  const int64_t half = int64_t(freqs.size());
  for (int64_t i = 0; i < half; ++i) {
    const double a = v[i], b = v[i + half], c = std::cos(double(pos) * freqs[size_t(i)]),
                 s = std::sin(double(pos) * freqs[size_t(i)]);
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

std::vector<double> pair_freqs(int64_t rotary) {
  std::vector<double> f;
  for (int64_t i = 0; i < rotary / 2; ++i) f.push_back(std::pow(10000.0, -2.0 * double(i) / double(rotary)));
  return f;
}

Eigen::VectorXd affine(const Matrix& w, const Vector& b, int64_t row0, int64_t rows, const Eigen::VectorXd& x) {
  Eigen::VectorXd y = w.middleRows(row0, rows).cast<double>() * x;
  if (b.size()) y += b.segment(row0, rows).cast<double>();
  return y;
}

// Causal attention outputs [T, d] from per-head scores and values.
MatD attend(const std::vector<std::vector<Eigen::VectorXd>>& q, const std::vector<std::vector<Eigen::VectorXd>>& k,
            const std::vector<std::vector<Eigen::VectorXd>>& v, const Matrix& o, const Vector& o_bias, double scale) {
  const size_t n = q.size(), t = q[0].size();
  const int64_t dv = v[0][0].size();
  MatD out(int64_t(t), o.rows());
  for (size_t i = 0; i < t; ++i) {
    Eigen::VectorXd heads(int64_t(n) * dv);
    for (size_t h = 0; h < n; ++h) {
      Eigen::VectorXd p(int64_t(i) + 1);
      for (size_t j = 0; j <= i; ++j) p[int64_t(j)] = scale * q[h][i].dot(k[h][j]);
      p = (p.array() - p.maxCoeff()).exp();
      p /= p.sum();
      Eigen::VectorXd mix = Eigen::VectorXd::Zero(dv);
      for (size_t j = 0; j <= i; ++j) mix += p[int64_t(j)] * v[h][j];
      heads.segment(int64_t(h) * dv, dv) = mix;
    }
    Eigen::VectorXd y = o.cast<double>() * heads;
    if (o_bias.size()) y += o_bias.cast<double>();
    out.row(int64_t(i)) = y;
  }
  return out;
}

MatD mha_forward(const Block& b, const MatD& x) {
  const AttentionWeights& w = b.w;
  const int n = w.layout.n_q;
  const int64_t dh = w.layout.head_dim_qk;
  const auto freqs = pair_freqs(b.rotary);
  using Heads = std::vector<std::vector<Eigen::VectorXd>>;  // [head][token]
  Heads q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int h = 0; h < n; ++h)
    for (int64_t t = 0; t < x.rows(); ++t) {
      const Eigen::VectorXd xt = x.row(t).transpose();
      Eigen::VectorXd qh = affine(w.q, w.q_bias, h * dh, dh, xt), kh = affine(w.k, w.k_bias, h * dh, dh, xt);
      rope(qh, freqs, t);
      rope(kh, freqs, t);
      q[size_t(h)].push_back(qh);
      k[size_t(h)].push_back(kh);
      v[size_t(h)].push_back(affine(w.v, w.v_bias, h * dh, dh, xt));
    }
  return attend(q, k, v, w.o, w.o_bias, 1.0 / std::sqrt(double(dh)));
}

MatD latent_forward(const LatentAttentionWeights& l, const MatD& x, int64_t rotary, int64_t head_dim) {
  const int n = l.n_heads;
  const int64_t nope = l.nope_dims, D = l.rope_dims, R = l.rank, dv = l.value_dims;
  const auto all = pair_freqs(rotary);
  std::vector<double> slot_freqs;
  for (int p : l.rope_pairs) slot_freqs.push_back(all[size_t(p)]);
  using Heads = std::vector<std::vector<Eigen::VectorXd>>;  // [head][token]
  Heads q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int64_t t = 0; t < x.rows(); ++t) {
    const Eigen::VectorXd xt = x.row(t).transpose();
    const Eigen::VectorXd c = affine(l.kv_a, l.kv_a_bias, 0, R, xt);
    Eigen::VectorXd k_pe = affine(l.kv_a, l.kv_a_bias, R, D, xt);
    rope(k_pe, slot_freqs, t);
    for (int h = 0; h < n; ++h) {
      Eigen::VectorXd qh = affine(l.q, l.q_bias, h * (nope + D), nope + D, xt);
      rope(qh.tail(D), slot_freqs, t);
      const Eigen::VectorXd kv = affine(l.kv_b, l.kv_b_bias, h * (nope + dv), nope + dv, c);
      Eigen::VectorXd kh(nope + D);
      kh << kv.head(nope), k_pe;
      q[size_t(h)].push_back(qh);
      k[size_t(h)].push_back(kh);
      v[size_t(h)].push_back(kv.tail(dv));
    }
  }
  return attend(q, k, v, l.o, l.o_bias, 1.0 / std::sqrt(double(head_dim)));
}

double relative_error(const MatD& got, const MatD& want) { return (got - want).norm() / want.norm(); }

struct Case {
  const char* name;
  int heads;
  int64_t head_dim, d, rotary;
  bool biases, calibrate;
};

class FullRank : public ::testing::TestWithParam<Case> {};

TEST_P(FullRank, LatentOutputEqualsMha) {
  const Case c = GetParam();
  const Block b = random_block(c.heads, c.head_dim, c.d, c.rotary, c.biases, 7);
  const MatD calib_x = random_tokens(64, c.d, 11), x = random_tokens(9, c.d, 13);
  const BlockCalibration calib = calibration_of(calib_x);
  LatentOptions o;
  o.rank = c.d;
  o.rope = c.rotary > 0;
  o.rotary_dims = c.rotary;
  o.rope_dims = int64_t(c.heads) * c.rotary;
  o.calib = c.calibrate ? &calib : nullptr;
  const LatentAttentionWeights l = latent_fold(b.w, o);
  EXPECT_EQ(l.nope_dims, c.head_dim - c.rotary) << "every rotary component has a slot: none left for the latent";
  EXPECT_EQ(l.kv_dims_per_token(), c.d + int64_t(c.heads) * c.rotary);
  EXPECT_LT(relative_error(latent_forward(l, x, c.rotary, c.head_dim), mha_forward(b, x)), 2e-5) << l.report;
}

INSTANTIATE_TEST_SUITE_P(Families, FullRank,
                         ::testing::Values(Case{"gpt2_biases", 4, 8, 32, 0, true, false},
                                           Case{"gpt2_biases_calibrated", 4, 8, 32, 0, true, true},
                                           Case{"llama_rope", 4, 8, 32, 8, false, false},
                                           Case{"llama_rope_calibrated", 4, 8, 32, 8, false, true},
                                           Case{"neox_partial_rotary_biases", 4, 8, 32, 4, true, true},
                                           Case{"qwen2_rope_qkv_biases", 4, 8, 32, 8, true, true}),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// The deepseek_v3 layout: one slot per RoPE pair (D = rotary dims), full latent rank; the error
// against MHA of a block with identical or with random keys in its heads.
double one_slot_per_pair_error(bool tied_keys, uint32_t seed, LatentAttentionWeights* folded) {
  const Block b = random_block(4, 8, 32, 8, false, seed, tied_keys);
  const MatD x = random_tokens(9, 32, seed + 2);
  LatentOptions o;
  o.rank = 32;
  o.rope = true;
  o.rope_dims = 8;
  *folded = latent_fold(b.w, o);
  return relative_error(latent_forward(*folded, x, 8, 8), mha_forward(b, x));
}

// Identical keys in every head: each RoPE pair has one component, so one slot per pair loses nothing.
TEST(LatentFold, TiedKeysAreExactWithOneSlotPerPair) {
  LatentAttentionWeights l;
  EXPECT_LT(one_slot_per_pair_error(true, 21, &l), 2e-5);
  EXPECT_EQ(l.rope_pairs, (std::vector<int>{0, 1, 2, 3})) << "slot j turns at pair j's frequency";
}

// Untied keys with one slot per pair are not exact: the leftovers lose their rotation.
TEST(LatentFold, UntiedKeysWithOneSlotPerPairAreApproximate) {
  LatentAttentionWeights l;
  EXPECT_GT(one_slot_per_pair_error(false, 25, &l), 1e-3);
  EXPECT_EQ(l.nope_dims, 8) << "each head's leftover pairs join the latent unrotated";
}

// Squared K/V reconstruction error of a non-RoPE fold over tokens x (the latent's up-projection
// against the block's own keys and values), the norm of the mean residual, and the total energy.
struct KvError {
  double err = 0, total = 0, mean_residual = 0;
};
KvError kv_error(const Block& b, const LatentAttentionWeights& l, const MatD& x) {
  const int n = b.w.layout.n_q;
  const int64_t dh = b.w.layout.head_dim_qk;
  KvError e;
  Eigen::VectorXd residual_sum = Eigen::VectorXd::Zero(2 * dh * n);  // kv_b's bias carries the mean
  for (int64_t t = 0; t < x.rows(); ++t) {
    const Eigen::VectorXd xt = x.row(t).transpose();
    const Eigen::VectorXd c = affine(l.kv_a, l.kv_a_bias, 0, l.rank, xt);
    for (int h = 0; h < n; ++h) {
      const Eigen::VectorXd kv = affine(l.kv_b, l.kv_b_bias, h * 2 * dh, 2 * dh, c);
      const Eigen::VectorXd k = affine(b.w.k, b.w.k_bias, h * dh, dh, xt),
                            v = affine(b.w.v, b.w.v_bias, h * dh, dh, xt);
      e.err += (kv.head(dh) - k).squaredNorm() + (kv.tail(dh) - v).squaredNorm();
      residual_sum.segment(h * 2 * dh, dh) += kv.head(dh) - k;
      residual_sum.segment(h * 2 * dh + dh, dh) += kv.tail(dh) - v;
      e.total += k.squaredNorm() + v.squaredNorm();
    }
  }
  e.mean_residual = residual_sum.norm() / double(x.rows());
  return e;
}

// Below full rank: the K/V reconstruction error over the calibration tokens never grows with R
// (the fit keeps the top output directions), and is zero at R = d.
TEST(LatentFold, ReconstructionErrorShrinksWithRank) {
  const int n = 4;
  const int64_t dh = 8, d = 32;
  const Block b = random_block(n, dh, d, 0, true, 31);
  const MatD x = random_tokens(80, d, 33);
  const BlockCalibration calib = calibration_of(x);
  double previous = INFINITY;
  for (int64_t rank : {4, 8, 16, 24, 32}) {
    LatentOptions o;
    o.rank = rank;
    o.calib = &calib;
    const KvError e = kv_error(b, latent_fold(b.w, o), x);
    EXPECT_LE(e.err, previous * (1 + 1e-9)) << "rank " << rank;
    EXPECT_LT(e.mean_residual, 1e-4 * std::sqrt(e.total / double(x.rows())))
        << "rank " << rank << ": the affine fit leaves no mean error";
    previous = e.err;
    if (rank == d) {
      EXPECT_LT(e.err / e.total, 1e-9);
    }
  }
}

// Large blocks find the latent by randomized subspace iteration: its error stays within 1% of the
// dense (optimal) fit's, with and without calibration, and the report says which was used.
TEST(LatentFold, RandomizedFitIsWithinOnePercentOfTheDenseFit) {
  const int n = 8;
  const int64_t dh = 16, d = 128, rank = 24;
  const Block b = random_block(n, dh, d, 0, true, 51);
  const MatD x = random_tokens(400, d, 53);
  const BlockCalibration calib = calibration_of(x);
  for (const BlockCalibration* c : {static_cast<const BlockCalibration*>(nullptr), &calib}) {
    LatentOptions o;
    o.rank = rank;
    o.calib = c;
    const LatentAttentionWeights dense = latent_fold(b.w, o);
    o.dense_limit = 64;  // min(256 stacked rows, 128) is above it and 24 + 32 < 128 / 2
    const LatentAttentionWeights randomized = latent_fold(b.w, o);
    EXPECT_EQ(dense.report.find("randomized"), std::string::npos) << dense.report;
    EXPECT_NE(randomized.report.find("randomized"), std::string::npos) << randomized.report;
    const KvError de = kv_error(b, dense, x), re = kv_error(b, randomized, x);
    std::cout << "[latent] rank " << rank << (c ? " calibrated" : " weights") << ": dense error " << de.err / de.total
              << ", randomized " << re.err / re.total << "\n";
    if (c) {
      EXPECT_GE(re.err, de.err * (1 - 1e-9)) << "on its calibration tokens the dense fit is optimal";
    }
    EXPECT_LE(re.err, de.err * 1.01);
  }
}

TEST(LatentFold, RefusesInconsistentOptions) {
  const Block b = random_block(4, 8, 32, 8, false, 41);
  LatentOptions o;
  o.rank = 16;
  o.rope = true;
  o.rope_dims = 7;  // odd
  EXPECT_THROW(latent_fold(b.w, o), std::logic_error);
  o.rope_dims = 40;  // more than heads x rotary dims
  EXPECT_THROW(latent_fold(b.w, o), std::logic_error);
  o.rope_dims = 8;
  o.rank = 0;
  EXPECT_THROW(latent_fold(b.w, o), std::logic_error);
}

}  // namespace
}  // namespace gqa
