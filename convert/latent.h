// Multi-head latent attention (MLA) from a multi-head block: the conversion target of issue #21.
// Per token the cache holds a latent c = A x^ of rank R, shared by every head, and one rotary key
// k_pe of D dims (D/2 rotate-half slots, each turning at one of the source's RoPE frequencies),
// shared by every head as well. Head h then scores
//     q_nope_h . (B_k,h c) + q_pe_h . k_pe
// and reads the values B_v,h c, so decode can absorb B_k,h into the query and B_v,h into the
// output and attend over c directly (DeepSeek-V2's MLA, arXiv 2405.04434).
//
// The fold follows TransMLA (arXiv 2502.07864) for the rotary part and MHA2MLA (2502.14837) for
// what does not fit in it:
//  - RoRoPE: RoPE turns pair j of every head by the same angle, so any unitary mixing of the heads'
//    pair-j keys commutes with it. The top eigenvectors u_c of the pair-j key second moment
//    C_j = A_j G^ A_j^H (the machinery of the svd strategy) give shared components s_c = u_c^H z;
//    since the key is shared, head h's query for that slot is conj(u_c,h) q_h[j], and a slot of
//    every component of every pair (D = n_heads x rotary dims) is exact.
//  - Partial RoPE: the components no slot keeps go back to their heads as keys without rotation
//    (each head's own leftover pair j, scored against its unrotated query pair j), and join the
//    latent. That is MHA2MLA's partial-RoPE: exact only at positions where the angle is small.
//  - Latent: the best rank-R subspace of the stacked non-rotary keys and the values (over the
//    calibration inputs' covariance when given, as the svd strategy), biases carried by the
//    up-projection: c = U^T W x, [k_nope; v] ~ U c + (I - U U^T) mu + U U^T b, mu = E[W x + b].
//    At R = d_model it spans every key and value exactly.
// Slots: when D is a multiple of the rotary dims every pair gets D / rotary_dims components (at
// D = rotary dims the deepseek_v3 layout: slot j turns at pair j's frequency); otherwise the D/2
// components with the most sqrt(key energy x query energy) win.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convert/attention_weights.h"
#include "convert/strategy.h"

namespace gqa {

struct LatentAttentionWeights {
  int n_heads = 0;
  int64_t rank = 0;       // R: latent dims per token
  int64_t rope_dims = 0;  // D: shared rotary key dims per token (even; 0 without RoPE)
  int64_t nope_dims = 0;  // per head: query/key dims scored without rotation
  int64_t value_dims = 0;
  Matrix q;       // [n*(nope + D), d]: per head its nope rows, then its D rope rows
  Vector q_bias;  // empty when the source has none
  Matrix kv_a;    // [R + D, d]: the latent rows, then the shared rotary key's rows
  Vector kv_a_bias;
  Matrix kv_b;       // [n*(nope + v), R]: per head its key (nope) rows, then its value rows
  Vector kv_b_bias;  // empty when the source has no key/value biases
  Matrix o;          // [d, n*v]
  Vector o_bias;
  std::vector<int> rope_pairs;  // [D/2]: the source RoPE pair (frequency) each slot turns at
  std::string report;           // a line for `gqa convert --report`

  int64_t kv_dims_per_token() const { return rank + rope_dims; }
  // The block's layout in config.json (gqa_latent): one shared entry, rope pairs included.
  AttentionLayout layout() const;
};

struct LatentOptions {
  int64_t rank = 0;         // R
  int64_t rope_dims = 0;    // D (even); must be 0 for blocks without RoPE
  bool rope = false;        // the block turns its queries and keys
  int64_t rotary_dims = 0;  // rotated dims per head (first ones, rotate-half); 0: the whole head
  const BlockCalibration* calib = nullptr;
  // The latent is found by a dense eigendecomposition (exact) while min(rows, d_model) of the
  // stacked keys and values is at most this, or the rank is near it; by randomized subspace
  // iteration above (Llama-2-7B: 8192 x 4097, where the dense fit takes minutes per block; from
  // Llama-3.2-1B-sized blocks on).
  int64_t dense_limit = 1024;
};

// The layout latent_fold gives a block of layout `source` (rope pairs still empty: the fold picks
// them), known before any weight is read so that a writer can size the block's tensors.
AttentionLayout latent_layout(const AttentionLayout& source, const LatentOptions& options);

// Folds a block in MHA form into latent attention. Throws std::logic_error on inconsistent
// options (the CLI checks them first with InputError).
LatentAttentionWeights latent_fold(const AttentionWeights& mha, const LatentOptions& options);

}  // namespace gqa
