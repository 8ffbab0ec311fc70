// svd strategy (low-rank KV compression folded into GQA): exact at identity and on models whose
// K/V heads are tied within groups (through the converter and the runtime, RoPE included, with
// and without calibration); a dense fold under RoPE is wrong, the per-pair complex fold is not;
// and on untied blocks the fit is the optimal rank-head_dim reconstruction of each group's K/V
// outputs (complex rank-1 per rotary pair under RoPE), below mean pooling's and first head's error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <Eigen/SVD>

#include <algorithm>
#include <complex>
#include <cstring>
#include <random>
#include <set>

#include "convert/calibration.h"
#include "convert/converter.h"
#include "convert/grouping.h"
#include "core/model/model.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {

// convert/strategies/svd.cpp: strategy_svd with the basis of the real fits chosen (canonical, or
// the eigensolver's vectors as they come).
StrategyOutput svd_fold(const StrategyInput& in, bool canonical_basis);

namespace {

using test::random_sequences;

using MatD = Eigen::MatrixXd;
using MatC = Eigen::MatrixXcd;
using test::logits_for;
using test::max_abs_diff;
using test::reference;

std::string oracle(const std::string& name) { return test::oracle_case(name); }

struct Case {
  std::string name;
  int kv_heads;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name << "/" << c.kv_heads; }

class SvdExact : public testing::TestWithParam<Case> {};

// Identity (groups of one) and tied pairs: the converted folder computes the source's logits, and
// the fit keeps all the energy.
TEST_P(SvdExact, ConvertedLogitsEqualTheSource) {
  const Case& c = GetParam();
  test::TempDir tmp("gqa-svd");
  ConvertOptions o;
  o.strategy = "svd";
  o.kv_heads = c.kv_heads;
  const std::string out = tmp.file("out");
  const ConvertSummary s = convert_checkpoint(oracle(c.name), out, o);
  EXPECT_EQ(load_config(out).layout(AttentionModule::DecoderSelf, 0).n_kv, c.kv_heads);
  const double d = max_abs_diff(logits_for(out, c.name), logits_for(oracle(c.name), c.name));
  ASSERT_FALSE(s.block_reports.empty());
  std::cout << "[svd] " << c.name << " kv=" << c.kv_heads << " max_abs_diff=" << d << "; " << s.block_reports[0]
            << "\n";
  EXPECT_LE(d, 1e-5);
  for (const auto& r : s.block_reports)
    EXPECT_NE(r.find("kept energy K 100.0% V 100.0% (weights"), std::string::npos) << r;
}

const Case kExact[] = {
    {"llama_mha", 4},          {"gpt2_h4", 4},          {"llama_tied_pairs", 2},    {"gpt2_tied_pairs", 2},
    {"gpt_neo_tied_pairs", 2}, {"t5_tied_pairs", 2},    {"gpt_neox_tied_pairs", 2}, {"opt_tied_pairs", 2},
    {"qwen2_tied_pairs", 2},   {"gpt_neox_parallel", 4}};

INSTANTIATE_TEST_SUITE_P(Cases, SvdExact, testing::ValuesIn(kExact), [](const testing::TestParamInfo<Case>& i) {
  return i.param.name + "_kv" + std::to_string(i.param.kv_heads);
});

// With calibration statistics (augmented Gram: biases take part), tied heads stay exact.
TEST(Svd, TiedPairsWithCalibrationAreExact) {
  test::TempDir tmp("gqa-svd");
  for (const char* name : {"llama_tied_pairs", "gpt2_tied_pairs"}) {
    auto model = load_model(oracle(name));
    const CalibrationStore cal = collect_calibration(*model, random_sequences(4, 16, model->config().vocab_size, 3));
    ConvertOptions o;
    o.strategy = "svd";
    o.kv_heads = 2;
    o.calibration = &cal;
    const std::string out = tmp.file(name);
    const ConvertSummary s = convert_checkpoint(oracle(name), out, o);
    ASSERT_FALSE(s.block_reports.empty());
    EXPECT_NE(s.block_reports[0].find("(calibration"), std::string::npos) << s.block_reports[0];
    const double d = max_abs_diff(logits_for(out, name), logits_for(oracle(name), name));
    std::cout << "[svd] " << name << " kv=2 calibrated max_abs_diff=" << d << "; " << s.block_reports[0] << "\n";
    EXPECT_LE(d, 1e-5);
  }
}

// Writes `src` with every decoder self-attention block replaced by svd at identity grouping with
// the given rope flag (the converter always passes the model's own) and basis.
void write_identity_svd(const std::string& src, const std::string& dst, bool rope, bool canonical_basis) {
  Checkpoint in(src);
  const ModelConfig& cfg = in.config();
  CheckpointWriter writer(dst, false);
  const int64_t n_layers = int64_t(cfg.layouts.at(AttentionModule::DecoderSelf).size());
  std::vector<AttentionWeights> blocks(static_cast<size_t>(n_layers));
  std::set<std::string> replaced;
  for (int64_t l = 0; l < n_layers; ++l) {
    const AttentionWeights mha = expand_to_mha(read_attention(in, AttentionModule::DecoderSelf, l));
    blocks[size_t(l)] =
        svd_fold(StrategyInput{mha, even_group_map(mha.layout.n_q, mha.layout.n_q), 0, rope, nullptr}, canonical_basis)
            .weights;
    const auto names = attention_tensor_names(in, AttentionModule::DecoderSelf, l);
    const AttentionWeights* block = &blocks[size_t(l)];
    for (auto& t :
         attention_tensors(in, cfg, AttentionModule::DecoderSelf, l, block->layout, in.tensor(names.front()).dtype,
                           [block]() -> const AttentionWeights& { return *block; }))
      writer.add(std::move(t));
    replaced.insert(names.begin(), names.end());
  }
  for (const std::string& name : in.names()) {
    if (replaced.count(name)) continue;
    const TensorView& v = in.tensor(name);
    writer.add({name, v.dtype, v.shape, v.nbytes, [&v](uint8_t* dst) { std::memcpy(dst, v.data, v.nbytes); }});
  }
  for (const auto& f : passthrough_files()) writer.copy_from(src, f);
  writer.set_metadata(in.metadata());
  writer.set_config(cfg.raw);
  writer.commit();
}

// The guard that the RoPE branch matters: at identity the paper's dense (real) fold, in the
// eigensolver's basis, rotates each key head by an orthogonal B_h, which does not commute with the
// rotary embedding; the per-pair fold does. (The canonical basis strategy_svd uses makes B_h = I at
// identity, which would hide the difference, so the raw basis is forced here.)
TEST(Svd, DenseFoldIsWrongUnderRopeThePairFoldIsExact) {
  test::TempDir tmp("gqa-svd");
  write_identity_svd(oracle("llama_mha"), tmp.file("dense"), false, false);
  write_identity_svd(oracle("llama_mha"), tmp.file("pairs"), true, false);
  const at::Tensor src = logits_for(oracle("llama_mha"), "llama_mha");
  const double dense = max_abs_diff(logits_for(tmp.file("dense"), "llama_mha"), src);
  const double pairs = max_abs_diff(logits_for(tmp.file("pairs"), "llama_mha"), src);
  std::cout << "[svd] llama_mha identity: dense fold max_abs_diff=" << dense << ", rope-aware=" << pairs << "\n";
  EXPECT_GT(dense, 1e-2);
  EXPECT_LE(pairs, 1e-5);
  // Control: without RoPE the same dense fold (q rows and o columns rotated) is exact.
  write_identity_svd(oracle("gpt2_h4"), tmp.file("gpt2_dense"), false, false);
  const double control =
      max_abs_diff(logits_for(tmp.file("gpt2_dense"), "gpt2_h4"), logits_for(oracle("gpt2_h4"), "gpt2_h4"));
  std::cout << "[svd] gpt2_h4 identity: dense fold max_abs_diff=" << control << "\n";
  EXPECT_LE(control, 1e-5);
}

// The oracle models' biases are all zero (transformers' init): give a block random q/k/v biases so
// the augmented statistics matter; with `tied`, heads 2i and 2i+1 get the same k/v biases.
AttentionWeights with_random_biases(AttentionWeights w, uint64_t seed, bool tied = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n01;
  auto fill = [&](Vector& b, int64_t rows, int64_t dh, bool tie) {
    b.resize(rows);
    for (int64_t i = 0; i < rows; ++i) b[i] = 0.5f * n01(rng);
    if (tie)
      for (int64_t h = 1; h < rows / dh; h += 2) b.segment(h * dh, dh) = b.segment((h - 1) * dh, dh);
  };
  fill(w.q_bias, w.q.rows(), w.layout.head_dim_qk, false);
  fill(w.k_bias, w.k.rows(), w.layout.head_dim_qk, tied);
  fill(w.v_bias, w.v.rows(), w.layout.head_dim_v, tied);
  return w;
}

// The canonical basis: a group of one keeps its weights, and identical heads give their own weights
// as the shared head with q and o untouched (what mean pooling writes), up to float rounding.
TEST(Svd, CanonicalBasisKeepsIdentityAndTiedWeights) {
  for (const char* name : {"gpt2_h4", "llama_tied_pairs", "gpt2_tied_pairs"}) {
    Checkpoint ckpt(oracle(name));
    const bool rope = ckpt.config().rope.type != RopeType::None;
    const bool identity = std::string(name) == "gpt2_h4";
    const AttentionWeights mha =
        with_random_biases(expand_to_mha(read_attention(ckpt, AttentionModule::DecoderSelf, 0)), 3, !identity);
    const int n = mha.layout.n_q, kv = identity ? n : n / 2;
    const auto groups = even_group_map(n, kv);
    const AttentionWeights got = strategy_svd(StrategyInput{mha, groups, 0, rope, nullptr}).weights;
    const AttentionWeights want = strategy_mean(StrategyInput{mha, groups, 0, rope, nullptr}).weights;
    auto close = [&](const auto& a, const auto& b, const char* what) {
      ASSERT_EQ(a.size(), b.size()) << name << " " << what;
      if (a.size()) {
        EXPECT_LE((a - b).cwiseAbs().maxCoeff(), 1e-6f * std::max(1.0f, b.cwiseAbs().maxCoeff()))
            << name << " " << what;
      }
    };
    close(got.q, want.q, "q");
    close(got.k, want.k, "k");
    close(got.v, want.v, "v");
    close(got.o, want.o, "o");
    close(got.q_bias, want.q_bias, "q_bias");
    close(got.k_bias, want.k_bias, "k_bias");
    close(got.v_bias, want.v_bias, "v_bias");
  }
}

// ---- Eigen-level reconstruction of K/V outputs -------------------------------------------------

// [W | b] rows of one head in double.
MatD aug(const Matrix& w, const Vector& b, int64_t row0, int64_t rows) {
  MatD out(rows, w.cols() + 1);
  out.leftCols(w.cols()) = w.middleRows(row0, rows).cast<double>();
  out.col(w.cols()) = b.size() ? Eigen::VectorXd(b.segment(row0, rows).cast<double>()) : Eigen::VectorXd::Zero(rows);
  return out;
}

// Augmented inputs X^ = [X | 1] of T random tokens: anisotropic, correlated, off-centre, so the
// calibrated fit differs from the weight-space one.
MatD random_inputs(int64_t T, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01;
  MatD z(T, d), mix(d, d);
  for (int64_t i = 0; i < z.size(); ++i) z.data()[i] = n01(rng);
  for (int64_t i = 0; i < mix.size(); ++i) mix.data()[i] = n01(rng) / std::sqrt(double(d));
  Eigen::VectorXd scale(d), offset(d);
  for (int64_t c = 0; c < d; ++c) scale[c] = std::exp(-3.0 * double(c) / double(d)), offset[c] = 0.5 * n01(rng);
  MatD x(T, d + 1);
  x.leftCols(d) = (z * scale.asDiagonal() * mix).rowwise() + offset.transpose();
  x.col(d).setOnes();
  return x;
}

BlockCalibration calibration_of(const MatD& xa) {
  const int64_t d = xa.cols() - 1;
  const MatD x = xa.leftCols(d);
  BlockCalibration c;
  c.input_gram = (x.transpose() * x).cast<float>();
  c.input_sum = x.colwise().sum().transpose().cast<float>();
  c.tokens = xa.rows();
  return c;
}

struct Errors {
  double svd = 0, mean = 0, first = 0, optimal = 0, total = 0;
};

// Squared reconstruction error of K (or V) outputs X^ W_h^T of every head: svd (shared head mapped
// back by B_h, recovered from the fold into q rows or o columns), mean pooling, first head, and
// the optimum (discarded singular values of each group's stacked outputs).
Errors output_errors(const AttentionWeights& mha, const AttentionWeights& out, const std::vector<int>& groups,
                     const MatD& xa, bool keys) {
  const int64_t dh = keys ? mha.layout.head_dim_qk : mha.layout.head_dim_v, d = mha.d_model();
  const Matrix& w = keys ? mha.k : mha.v;
  const Vector& b = keys ? mha.k_bias : mha.v_bias;
  Errors e;
  const auto members = group_members(groups);
  for (size_t g = 0; g < members.size(); ++g) {
    const auto& heads = members[g];
    const int64_t m = int64_t(heads.size());
    MatD stacked(xa.rows(), m * dh), mean_w = MatD::Zero(dh, d + 1);
    for (int64_t i = 0; i < m; ++i) {
      const MatD wh = aug(w, b, heads[size_t(i)] * dh, dh);
      stacked.middleCols(i * dh, dh) = xa * wh.transpose();
      mean_w += wh / double(m);
    }
    const MatD shared = xa * aug(keys ? out.k : out.v, keys ? out.k_bias : out.v_bias, int64_t(g) * dh, dh).transpose();
    const MatD mean = xa * mean_w.transpose();
    for (int64_t i = 0; i < m; ++i) {
      const int h = heads[size_t(i)];
      MatD bh;     // head h's key ~ B_h k_s
      if (keys) {  // q'_h = B_h^T q_h
        const MatD q0 = aug(mha.q, mha.q_bias, h * dh, dh), q1 = aug(out.q, out.q_bias, h * dh, dh);
        const MatD bt = q1 * q0.transpose() * (q0 * q0.transpose()).inverse();
        EXPECT_LE((bt * q0 - q1).norm(), 1e-4 * q1.norm());
        bh = bt.transpose();
      } else {  // O'_h = O_h B_h
        const MatD o0 = mha.o_head(h).cast<double>(), o1 = out.o_head(h).cast<double>();
        bh = (o0.transpose() * o0).inverse() * o0.transpose() * o1;
        EXPECT_LE((o0 * bh - o1).norm(), 1e-4 * o1.norm());
      }
      const MatD truth = stacked.middleCols(i * dh, dh);
      e.svd += (truth - shared * bh.transpose()).squaredNorm();
      e.mean += (truth - mean).squaredNorm();
      e.first += (truth - stacked.middleCols(0, dh)).squaredNorm();
    }
    const Eigen::VectorXd sv = Eigen::BDCSVD<MatD>(stacked).singularValues();
    e.optimal += sv.tail(sv.size() - dh).squaredNorm();
    e.total += stacked.squaredNorm();
  }
  return e;
}

void check(const Errors& e, const std::string& what) {
  std::cout << "[svd] " << what << ": squared error svd " << e.svd << " (optimum " << e.optimal << ", kept "
            << 100 * (1 - e.svd / e.total) << "%) mean " << e.mean << " first " << e.first << "\n";
  EXPECT_LE(e.svd, e.optimal * (1 + 1e-4) + 1e-9 * e.total) << what;
  EXPECT_LT(e.svd, 0.9 * e.mean) << what;
  EXPECT_LT(e.svd, 0.9 * e.first) << what;
}

// With calibration: the K/V outputs on the calibration tokens are reconstructed optimally, better
// than mean pooling and the first head (even and uneven groups; GPT-2 has q/k/v biases).
TEST(Svd, CalibratedFitIsTheBestReconstructionOfKVOutputs) {
  Checkpoint ckpt(oracle("gpt2_h6"));
  const AttentionWeights mha =
      with_random_biases(expand_to_mha(read_attention(ckpt, AttentionModule::DecoderSelf, 0)), 5);
  const MatD xa = random_inputs(300, mha.d_model(), 7);
  const BlockCalibration calib = calibration_of(xa);
  for (const auto& groups : {std::vector<int>{0, 0, 1, 1, 2, 2}, std::vector<int>{0, 0, 0, 1, 1, 2}}) {
    const StrategyOutput out = strategy_svd(StrategyInput{mha, groups, 0, false, &calib});
    EXPECT_EQ(out.weights.layout.n_kv, 3);
    std::cout << "[svd] gpt2_h6 layer 0 calibrated: " << out.report << "\n";
    check(output_errors(mha, out.weights, groups, xa, true), "K calibrated");
    check(output_errors(mha, out.weights, groups, xa, false), "V calibrated");
    // The weight-space fit is worse on these tokens than the calibrated one.
    const StrategyOutput plain = strategy_svd(StrategyInput{mha, groups, 0, false, nullptr});
    EXPECT_GT(output_errors(mha, plain.weights, groups, xa, true).svd,
              output_errors(mha, out.weights, groups, xa, true).svd);
  }
}

// Without calibration (step 0, weight space: X^ = I): svd beats mean and first head on untied models.
TEST(Svd, WeightSpaceFitBeatsMeanPooling) {
  for (const char* name : {"gpt2_h6", "gpt_neo_h6"}) {
    Checkpoint ckpt(oracle(name));
    const AttentionWeights mha =
        with_random_biases(expand_to_mha(read_attention(ckpt, AttentionModule::DecoderSelf, 1)), 6);
    const MatD identity = MatD::Identity(mha.d_model() + 1, mha.d_model() + 1);
    for (int kv : {3, 2, 1}) {
      const auto groups = even_group_map(mha.layout.n_q, kv);
      const StrategyOutput out = strategy_svd(StrategyInput{mha, groups, 0, false, nullptr});
      std::cout << "[svd] " << name << " layer 1 kv=" << kv << ": " << out.report << "\n";
      check(output_errors(mha, out.weights, groups, identity, true), std::string(name) + " K kv=" + std::to_string(kv));
      check(output_errors(mha, out.weights, groups, identity, false),
            std::string(name) + " V kv=" + std::to_string(kv));
    }
  }
}

// Under RoPE the key fit is per frequency pair: head h's pair z_h = k[j] + i k[j + dh/2] is
// reconstructed as u_h s with u_h recovered from the query fold (q pair times conj(u_h)). On
// calibration tokens this must be the optimal rank-1 fit of every pair's complex T x m outputs —
// which fails if u or its conjugate is taken from the wrong side.
TEST(Svd, RopeFitIsTheBestRankOnePerPair) {
  Checkpoint ckpt(oracle("llama_mha"));
  const AttentionWeights mha =
      with_random_biases(expand_to_mha(read_attention(ckpt, AttentionModule::DecoderSelf, 0)), 8);
  const int64_t dh = mha.layout.head_dim_qk, half = dh / 2, d = mha.d_model();
  const MatD xa = random_inputs(200, d, 11);
  const BlockCalibration calib = calibration_of(xa);
  for (int kv : {2, 1}) {
    const auto groups = even_group_map(mha.layout.n_q, kv);
    const StrategyOutput out = strategy_svd(StrategyInput{mha, groups, 0, true, &calib});
    std::cout << "[svd] llama_mha layer 0 kv=" << kv << " rope: " << out.report << "\n";
    // Complex pair j of rows `w` (augmented [dh, d+1]): [T] outputs on xa, or the row itself.
    auto pair_row = [&](const MatD& w, int64_t j) {
      Eigen::RowVectorXcd r(d + 1);
      r.real() = w.row(j);
      r.imag() = w.row(j + half);
      return r;
    };
    double svd = 0, optimal = 0, mean = 0, total = 0;
    const auto members = group_members(groups);
    for (size_t g = 0; g < members.size(); ++g) {
      const auto& heads = members[g];
      const int64_t m = int64_t(heads.size());
      const MatD shared = aug(out.weights.k, out.weights.k_bias, int64_t(g) * dh, dh);
      for (int64_t j = 0; j < half; ++j) {
        MatC z(xa.rows(), m);
        Eigen::RowVectorXcd mean_row = Eigen::RowVectorXcd::Zero(d + 1);
        for (int64_t i = 0; i < m; ++i) {
          const Eigen::RowVectorXcd a = pair_row(aug(mha.k, mha.k_bias, heads[size_t(i)] * dh, dh), j);
          z.col(i) = xa.cast<std::complex<double>>() * a.transpose();
          mean_row += a / double(m);
        }
        const Eigen::VectorXcd s = xa.cast<std::complex<double>>() * pair_row(shared, j).transpose();
        const Eigen::VectorXcd zm = xa.cast<std::complex<double>>() * mean_row.transpose();
        for (int64_t i = 0; i < m; ++i) {
          const int h = heads[size_t(i)];
          const Eigen::RowVectorXcd q0 = pair_row(aug(mha.q, mha.q_bias, h * dh, dh), j);
          const Eigen::RowVectorXcd q1 = pair_row(aug(out.weights.q, out.weights.q_bias, h * dh, dh), j);
          const std::complex<double> f = (q0.conjugate().array() * q1.array()).sum() / q0.squaredNorm();  // q1 = f q0
          EXPECT_LE((q1 - f * q0).norm(), 1e-5 * q1.norm());
          svd += (z.col(i) - std::conj(f) * s).squaredNorm();
          mean += (z.col(i) - zm).squaredNorm();
        }
        const Eigen::VectorXd sv = Eigen::BDCSVD<MatC>(z).singularValues();
        optimal += sv.tail(sv.size() - 1).squaredNorm();
        total += z.squaredNorm();
      }
    }
    std::cout << "[svd] llama_mha rope K kv=" << kv << ": squared error svd " << svd << " (optimum " << optimal
              << ", kept " << 100 * (1 - svd / total) << "%) mean " << mean << "\n";
    EXPECT_LE(svd, optimal * (1 + 1e-4) + 1e-9 * total);
    EXPECT_LT(svd, 0.9 * mean);
    check(output_errors(mha, out.weights, groups, xa, false), "llama_mha V kv=" + std::to_string(kv));
  }
}

}  // namespace
}  // namespace gqa
