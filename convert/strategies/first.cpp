// first / random (the GQA paper's ablation baselines): each KV head keeps one head of its group —
// the first one, or one drawn with the given seed.
#include <random>

#include "convert/grouping.h"
#include "convert/strategy.h"

namespace gqa {
namespace {

StrategyOutput keep_one(const StrategyInput& in, bool random) {
  std::mt19937_64 rng(in.seed);
  Vector w = Vector::Zero(in.mha.layout.n_q);
  std::string kept;
  for (const auto& m : group_members(in.group_of)) {
    const int h = random ? m[size_t(rng() % m.size())] : m.front();
    w[h] = 1.0f;
    kept += (kept.empty() ? "" : ",") + std::to_string(h);
  }
  return {pool_heads(in.mha, in.group_of, w, w), {}, {}, "kept heads " + kept};
}

}  // namespace

StrategyOutput strategy_first(const StrategyInput& in) { return keep_one(in, false); }
StrategyOutput strategy_random(const StrategyInput& in) { return keep_one(in, true); }

}  // namespace gqa
