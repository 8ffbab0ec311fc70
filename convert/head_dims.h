// "KQV" reduction (the seed poster's variant): smaller query/key and value vectors for every head,
// by projection. A KV head and the query heads of its group share one key (value) subspace,
// chosen so the attention scores q_h.k (and the outputs O_h v) change least: the best rank-r
// factorisation of the stacked bilinear forms in orthonormal coordinates (QR + SVD). Biases join
// through an augmented constant input. Exact when the forms already have rank <= r (e.g. r equal
// to the head size). Rotary models reduce q/k by choose_rope_pairs/keep_rope_pairs instead.
#pragma once
#include <vector>

#include "convert/attention_weights.h"

namespace gqa {

// Returns the block with head_dim_qk = qk_dim and head_dim_v = v_dim (each <= the current size).
AttentionWeights reduce_head_dims(const AttentionWeights& w, int qk_dim, int v_dim);

// Rotary models: q/k shrink by keeping whole frequency pairs (dims f and f + d/2 of the
// rotate-half layout) — dropping a pair commutes with the rotation, a dense projection does not.
// The pairs kept are those with the largest |q pair| * |k pair| summed over every head of every
// block (one set for the model, since the runtime has one rotary table). Ascending indices.
std::vector<int> choose_rope_pairs(const std::vector<AttentionWeights>& blocks, int n_pairs);
AttentionWeights keep_rope_pairs(const AttentionWeights& w, const std::vector<int>& pairs);

}  // namespace gqa
