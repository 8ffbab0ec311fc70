// similarity (SimGQA): group heads that are alike, then mean-pool each group. Heads are compared
// by the cosine of their flattened K and V weights (or, with calibration text, of their key
// outputs), split into groups of the target sizes by a balanced assignment, and permuted so every
// group is contiguous: the result is a plain GQA block that needs no gather at run time.
#include <cstdio>
#include <numeric>
#include <random>

#include "convert/grouping.h"
#include "convert/strategy.h"

namespace gqa {
namespace {

// Similarity of key outputs on calibration data: cos(K_a, K_b) with K_h = X W_h^T, computed from
// the Gram matrix G = X^T X as <W_a, W_b>_G / (|W_a|_G |W_b|_G) (trace form), averaged with V's.
Matrix activation_similarity(const AttentionWeights& mha, const Matrix& gram) {
  const int n = mha.layout.n_q;
  auto sim = [&](auto head_of) {
    std::vector<Matrix> wg(static_cast<size_t>(n));
    for (int h = 0; h < n; ++h) wg[size_t(h)] = Matrix(head_of(h)) * gram;  // [dh, d]
    Matrix s(n, n);
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b) s(a, b) = (wg[size_t(a)].array() * Matrix(head_of(b)).array()).sum();
    Vector norm = s.diagonal().cwiseMax(1e-30f).cwiseSqrt();
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b) s(a, b) /= norm[a] * norm[b];
    return s;
  };
  Matrix k = sim([&](int h) { return mha.k_head(h); });
  Matrix v = sim([&](int h) { return mha.v_head(h); });
  return (k + v) / 2;
}

}  // namespace

StrategyOutput strategy_similarity(const StrategyInput& in) {
  const int n = in.mha.layout.n_q;
  const Matrix sim = in.calib ? activation_similarity(in.mha, in.calib->input_gram) : weight_similarity(in.mha);
  std::vector<int> sizes;
  for (const auto& m : group_members(in.group_of)) sizes.push_back(int(m.size()));
  const std::vector<int> grouping = balanced_groups(sim, sizes, in.seed);

  // Baseline for the report: the same group sizes, heads shuffled.
  std::mt19937_64 rng(in.seed ^ 0x9e3779b97f4a7c15ull);
  double random_mean = 0;
  const int trials = 200;
  for (int t = 0; t < trials; ++t) {
    std::vector<int> shuffled = in.group_of;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    random_mean += within_group_similarity(sim, shuffled) / trials;
  }

  // Permute heads so each group is contiguous, then mean-pool the contiguous groups (unless the
  // heads must stay in place: then the group map is not contiguous and the runtime gathers).
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!in.fixed_head_order)
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return grouping[size_t(a)] < grouping[size_t(b)]; });
  std::vector<int> contiguous(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) contiguous[size_t(i)] = grouping[size_t(order[size_t(i)])];
  const AttentionWeights permuted = permute_heads(in.mha, order);
  StrategyOutput out = strategy_mean(
      StrategyInput{permuted, contiguous, in.seed, in.rope, in.calib, in.fixed_head_order, in.rotary_dims});

  char line[160];
  std::snprintf(line, sizeof line, "within-group similarity %.4f (random grouping %.4f, %s)",
                within_group_similarity(sim, grouping), random_mean, in.calib ? "activations" : "weights");
  std::string order_text;
  for (int h : order) order_text += (order_text.empty() ? "" : ",") + std::to_string(h);
  out.report = std::string(line) + "; head order " + order_text;
  return out;
}

}  // namespace gqa
