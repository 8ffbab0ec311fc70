// mean (GQA paper): each KV head is the average of its group's K and V heads (weights and biases).
#include "convert/grouping.h"
#include "convert/strategy.h"

namespace gqa {

StrategyOutput strategy_mean(const StrategyInput& in) {
  const auto members = group_members(in.group_of);
  Vector w(in.mha.layout.n_q);
  for (const auto& m : members)
    for (int h : m) w[h] = 1.0f / float(m.size());
  return {pool_heads(in.mha, in.group_of, w, w), {}, {}, ""};
}

}  // namespace gqa
