// SimGQA during uptraining (--regroup-every N): every N steps, each weighted (WGQA-form) block
// regroups its heads by the similarity of their current K/V projections, with the group sizes kept
// (balanced assignment, convert/grouping). A weighted block stores one K/V head per query head and
// pools them by group on every forward, so regrouping only changes the head -> group map: no
// weight moves, the optimizer state stays attached to the same heads, and the block computes the
// same function before pooling. Heads are not permuted into contiguous groups because T5 adds a
// per-head relative position bias shared by all layers of a stack, which a per-layer permutation
// would break; the runtime reads permuted maps directly.
#pragma once
#include <cstdint>

#include "core/model/model.h"

namespace gqa {

struct RegroupReport {
  int64_t blocks = 0;                                  // weighted blocks regrouped
  int64_t changed = 0;                                 // blocks whose partition changed
  double similarity_before = 0, similarity_after = 0;  // mean within-group cosine, over blocks
};

// Regroups every weighted block of `model` in place (layouts in model.config() updated).
RegroupReport regroup_weighted_blocks(Model& model, uint64_t seed);

}  // namespace gqa
