// Shared head-grouping mechanics for every strategy: group lists, head permutations that keep the
// function unchanged, head similarity, and balanced assignment of heads to fixed-size groups.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "convert/attention_weights.h"

namespace gqa {

// Query heads of each KV head: members[g] lists h with group_of[h] == g, in head order.
std::vector<std::vector<int>> group_members(const std::vector<int>& group_of);

// Contiguous equal groups: n_q / n_kv heads each (n_kv must divide n_q).
std::vector<int> even_group_map(int n_q, int n_kv);

// Reorders the heads of an MHA-form block: new head i is old head order[i] (q rows and bias, k/v
// rows and biases, o columns). Attention is a sum over heads, so the function is unchanged.
AttentionWeights permute_heads(const AttentionWeights& mha, const std::vector<int>& order);

// Cosine similarity of heads from their flattened K and V projections (mean of the two), n_q x n_q.
Matrix weight_similarity(const AttentionWeights& mha);

// Splits n heads into groups of the given sizes, maximising the total within-group similarity:
// k-medoids-style rounds where heads are assigned to group slots by an optimal (Hungarian)
// assignment, then pairwise swaps until no swap helps. Returns group_of (groups numbered in
// order of their first head).
std::vector<int> balanced_groups(const Matrix& similarity, const std::vector<int>& sizes, uint64_t seed);

// Mean similarity of head pairs that share a group.
double within_group_similarity(const Matrix& similarity, const std::vector<int>& group_of);

// Optimal assignment: rows to distinct columns minimising total cost (rows <= cols).
std::vector<int> hungarian(const Matrix& cost);

}  // namespace gqa
