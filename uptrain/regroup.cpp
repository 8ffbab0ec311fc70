#include "uptrain/regroup.h"

#include <ATen/core/grad_mode.h>

#include <cstring>

#include "convert/grouping.h"
#include "core/model/attention.h"

namespace gqa {
namespace {

// Mean of the K and V cosine similarities of the stored per-query-head projections, n_q x n_q.
Matrix head_similarity(const Attention& a) {
  const int64_t n = a.layout.n_q;
  auto cosine = [n](const at::Tensor& w) {
    at::Tensor rows = w.detach().to(at::kCPU, at::kFloat).reshape({n, -1});
    rows = rows / rows.norm(2, 1, true).clamp_min(1e-12);
    return at::mm(rows, rows.t());
  };
  at::Tensor sim = ((cosine(a.k.weight) + cosine(a.v.weight)) * 0.5).contiguous();
  Matrix m(n, n);
  std::memcpy(m.data(), sim.data_ptr<float>(), size_t(n * n) * sizeof(float));
  return m;
}

// True when two maps put the same heads together (group numbers aside).
bool same_partition(const std::vector<int>& a, const std::vector<int>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = i + 1; j < a.size(); ++j)
      if ((a[i] == a[j]) != (b[i] == b[j])) return false;
  return true;
}

}  // namespace

RegroupReport regroup_weighted_blocks(Model& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  RegroupReport r;
  for (const AttentionBlock& b : model.attention_blocks()) {
    Attention& a = *b.attention;
    if (!a.k_scale.defined()) continue;
    const Matrix sim = head_similarity(a);
    const std::vector<int> before = a.layout.group_of;
    const std::vector<int> after = balanced_groups(sim, a.layout.group_sizes(), seed + uint64_t(b.layer));
    r.similarity_before += within_group_similarity(sim, before);
    r.similarity_after += within_group_similarity(sim, after);
    ++r.blocks;
    if (same_partition(before, after)) continue;
    ++r.changed;
    a.layout.group_of = after;
    a.group_index = at::tensor(std::vector<int64_t>(after.begin(), after.end()), at::kLong).to(a.k.weight.device());
    model.set_layout(b.module, b.layer, a.layout);
  }
  if (r.blocks) {
    r.similarity_before /= double(r.blocks);
    r.similarity_after /= double(r.blocks);
  }
  return r;
}

}  // namespace gqa
