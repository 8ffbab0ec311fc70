// A strategy turns the MHA form of one attention block into a grouped block. It sees heads only:
// never a tensor name or a family (those stay in core/arch and convert/attention_weights).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convert/attention_weights.h"

namespace gqa {

// Calibration statistics of one block (from running the source model on calibration text).
struct BlockCalibration {
  Matrix input_gram;  // sum over tokens of x x^T for the block's key/value input x: [d, d]
  Vector input_sum;   // sum over tokens of x: [d] (with tokens, lets biases join the statistics)
  int64_t tokens = 0;
};

// The augmented Gram G^ = [[X^T X, X^T 1], [1^T X, N]] of the block's K/V input, symmetrised, in
// double; empty without calibration (callers then fit in weight space: G^ = I). Throws
// std::logic_error when the statistics do not match the block's width d.
Eigen::MatrixXd augmented_gram(const BlockCalibration* calib, int64_t d);

struct StrategyInput {
  const AttentionWeights& mha;  // one KV head per query head
  std::vector<int> group_of;    // target grouping of the query heads
  uint64_t seed = 0;
  bool rope = false;  // rotary embeddings sit between the k projection and the dot product
  const BlockCalibration* calib = nullptr;
  // The heads carry a per-head term shared with other layers (T5 self-attention's relative
  // position bias), so a strategy must not reorder them; regrouped heads then keep their places
  // and the layout's group map says which KV head each reads.
  bool fixed_head_order = false;
  // With rope: the first rotary_dims dims of each q/k head turn, in pairs (j, j + rotary_dims/2),
  // and the rest pass through (GPT-NeoX's partial rotary); 0 = the whole head turns.
  int64_t rotary_dims = 0;
};

struct StrategyOutput {
  // The grouped block (its layout may permute heads, see similarity). With scales (WGQA) k and v
  // still hold one head per query head, and the layout says how they pool.
  AttentionWeights weights;
  Vector k_scale, v_scale;  // learnable per-head scalars (WGQA), [n_q] each; empty otherwise
  std::string report;       // a line for `gqa convert --report`
};

using Strategy = StrategyOutput (*)(const StrategyInput&);

// Registered strategies by name; nullptr for an unknown name.
Strategy find_strategy(const std::string& name);
// Whether a strategy writes WGQA folders (stored heads + scales, to be folded after uptraining).
bool strategy_keeps_scales(const std::string& name);
std::vector<std::string> strategy_names();

// Shared by the pooling strategies: K/V of group g = sum over its heads h of k_w[h] * K_h (and
// biases likewise; V with v_w). q and o are kept.
AttentionWeights pool_heads(const AttentionWeights& mha, const std::vector<int>& group_of, const Vector& k_w,
                            const Vector& v_w);

// The strategies (one file each under convert/strategies/).
StrategyOutput strategy_mean(const StrategyInput& in);
StrategyOutput strategy_first(const StrategyInput& in);
StrategyOutput strategy_random(const StrategyInput& in);
StrategyOutput strategy_similarity(const StrategyInput& in);
StrategyOutput strategy_svd(const StrategyInput& in);
StrategyOutput strategy_weighted(const StrategyInput& in);
StrategyOutput strategy_random_weighted(const StrategyInput& in);

}  // namespace gqa
