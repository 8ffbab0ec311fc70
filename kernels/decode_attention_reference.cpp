#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/decode_attention.h"

namespace gqa::kernels {

void group_lists(const std::vector<int>& group_of, int n_kv, std::vector<int>* heads, std::vector<int>* offsets) {
  heads->clear();
  offsets->assign(size_t(n_kv) + 1, 0);
  for (int g = 0; g < n_kv; ++g) {
    (*offsets)[size_t(g)] = int(heads->size());
    for (int h = 0; h < int(group_of.size()); ++h)
      if (group_of[size_t(h)] == g) heads->push_back(h);
  }
  (*offsets)[size_t(n_kv)] = int(heads->size());
}

void decode_attention_reference(const DecodeShape& s, const float* q, const float* k, const float* v,
                                const uint8_t* valid, const int* group_heads, const int* group_offsets, float* out) {
  std::vector<float> scores(size_t(s.length));
  for (int b = 0; b < s.batch; ++b)
    for (int g = 0; g < s.n_kv; ++g) {
      const float* kg = k + (int64_t(b) * s.n_kv + g) * s.capacity * s.d_qk;
      const float* vg = v + (int64_t(b) * s.n_kv + g) * s.capacity * s.d_v;
      for (int i = group_offsets[g]; i < group_offsets[g + 1]; ++i) {
        const int h = group_heads[i];
        const float* qh = q + (int64_t(b) * s.n_q + h) * s.d_qk;
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t t = 0; t < s.length; ++t) {
          if (!valid[int64_t(b) * s.capacity + t]) {
            scores[size_t(t)] = -std::numeric_limits<float>::infinity();
            continue;
          }
          float dot = 0;
          for (int j = 0; j < s.d_qk; ++j) dot += qh[j] * kg[t * s.d_qk + j];
          scores[size_t(t)] = dot * s.scale;
          best = std::max(best, scores[size_t(t)]);
        }
        float* o = out + (int64_t(b) * s.n_q + h) * s.d_v;
        std::fill(o, o + s.d_v, 0.0f);
        float total = 0;
        for (int64_t t = 0; t < s.length; ++t) {
          if (scores[size_t(t)] == -std::numeric_limits<float>::infinity()) continue;
          const float p = std::exp(scores[size_t(t)] - best);
          total += p;
          for (int j = 0; j < s.d_v; ++j) o[j] += p * vg[t * s.d_v + j];
        }
        if (total > 0)
          for (int j = 0; j < s.d_v; ++j) o[j] /= total;
      }
    }
}

}  // namespace gqa::kernels
