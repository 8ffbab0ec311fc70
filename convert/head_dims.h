// "KQV" reduction (the seed poster's variant): smaller query/key and value vectors for every head,
// by projection. A KV head and the query heads of its group share one key (value) subspace,
// chosen so the attention scores q_h.k (and the outputs O_h v) change least: the best rank-r
// factorisation of the stacked bilinear forms in orthonormal coordinates (QR + SVD). Biases join
// through an augmented constant input. Exact when the forms already have rank <= r (e.g. r equal
// to the head size). Not for rotary embeddings: a projection of q/k does not commute with RoPE.
#pragma once
#include "convert/attention_weights.h"

namespace gqa {

// Returns the block with head_dim_qk = qk_dim and head_dim_v = v_dim (each <= the current size).
AttentionWeights reduce_head_dims(const AttentionWeights& w, int qk_dim, int v_dim);

}  // namespace gqa
