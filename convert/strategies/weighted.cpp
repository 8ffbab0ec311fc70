// weighted (WGQA, "Weighted Grouped-Query Attention"): each KV head is a learned weighted sum of
// its group's K (and V) heads, one scalar per original head for K and one for V. The converted
// folder keeps every original K/V head and the scalars (config gqa_weighted) so `uptrain` learns
// them; `gqa fold` then bakes them into plain GQA weights (zero inference overhead).
// weighted starts the scalars at 1/g, so the first forward equals mean pooling (the paper's 0.5
// with two heads per group); random-weighted (RandWGQA) draws them from N(0, 1), seeded.
#include <random>

#include "convert/grouping.h"
#include "convert/strategy.h"

namespace gqa {
namespace {

StrategyOutput keep_heads_with_scales(const StrategyInput& in, Vector k_scale, Vector v_scale) {
  StrategyOutput out;
  out.weights = in.mha;  // every K/V head stays; the layout says how they pool
  out.weights.layout.group_of = in.group_of;
  out.weights.layout.n_kv = int(group_members(in.group_of).size());
  out.k_scale = std::move(k_scale);
  out.v_scale = std::move(v_scale);
  return out;
}

}  // namespace

StrategyOutput strategy_weighted(const StrategyInput& in) {
  Vector w(in.mha.layout.n_q);
  for (const auto& m : group_members(in.group_of))
    for (int h : m) w[h] = 1.0f / float(m.size());
  return keep_heads_with_scales(in, w, w);
}

StrategyOutput strategy_random_weighted(const StrategyInput& in) {
  std::mt19937_64 rng(in.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Vector k(in.mha.layout.n_q), v(in.mha.layout.n_q);
  for (int h = 0; h < k.size(); ++h) k[h] = normal(rng);
  for (int h = 0; h < v.size(); ++h) v[h] = normal(rng);
  return keep_heads_with_scales(in, k, v);
}

}  // namespace gqa
