#include "convert/grouping.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "core/error.h"

namespace gqa {

std::vector<std::vector<int>> group_members(const std::vector<int>& group_of) {
  int n_kv = 0;
  for (int g : group_of) n_kv = std::max(n_kv, g + 1);
  std::vector<std::vector<int>> members(static_cast<size_t>(n_kv));
  for (size_t h = 0; h < group_of.size(); ++h) members[size_t(group_of[h])].push_back(int(h));
  return members;
}

std::vector<int> even_group_map(int n_q, int n_kv) { return AttentionLayout::even(n_q, n_kv, 1, 1).group_of; }

AttentionWeights permute_heads(const AttentionWeights& mha, const std::vector<int>& order) {
  const AttentionLayout& l = mha.layout;
  AttentionWeights p = mha;
  for (int i = 0; i < l.n_q; ++i) {
    const int h = order[size_t(i)];
    p.q_head(i) = mha.q_head(h);
    p.k_head(i) = mha.k_head(h);
    p.v_head(i) = mha.v_head(h);
    p.o_head(i) = mha.o_head(h);
    auto seg = [&](Vector& dst, const Vector& src, int dim) {
      if (src.size()) dst.segment(int64_t(i) * dim, dim) = src.segment(int64_t(h) * dim, dim);
    };
    seg(p.q_bias, mha.q_bias, l.head_dim_qk);
    seg(p.k_bias, mha.k_bias, l.head_dim_qk);
    seg(p.v_bias, mha.v_bias, l.head_dim_v);
  }
  return p;
}

Matrix weight_similarity(const AttentionWeights& mha) {
  const int n = mha.layout.n_q;
  auto cosine = [n](auto head_of) {
    Matrix flat(n, 0);
    for (int h = 0; h < n; ++h) {
      Matrix m = head_of(h);
      if (flat.cols() == 0) flat.resize(n, m.size());
      flat.row(h) = Eigen::Map<const Eigen::RowVectorXf>(m.data(), m.size());
      const float norm = flat.row(h).norm();
      if (norm > 0) flat.row(h) /= norm;
    }
    return Matrix(flat * flat.transpose());
  };
  Matrix k = cosine([&](int h) { return Matrix(mha.k_head(h)); });
  Matrix v = cosine([&](int h) { return Matrix(mha.v_head(h)); });
  return (k + v) / 2;
}

double within_group_similarity(const Matrix& sim, const std::vector<int>& group_of) {
  double total = 0;
  int64_t pairs = 0;
  for (size_t a = 0; a < group_of.size(); ++a)
    for (size_t b = a + 1; b < group_of.size(); ++b)
      if (group_of[a] == group_of[b]) {
        total += sim(int64_t(a), int64_t(b));
        ++pairs;
      }
  return pairs ? total / double(pairs) : 1.0;
}

std::vector<int> hungarian(const Matrix& cost) {
  // Jonker-Volgenant style shortest augmenting paths (e-maxx formulation), O(n^2 m).
  const int n = int(cost.rows()), m = int(cost.cols());
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(size_t(n) + 1), v(size_t(m) + 1);
  std::vector<int> p(size_t(m) + 1), way(size_t(m) + 1);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(size_t(m) + 1, inf);
    std::vector<bool> used(size_t(m) + 1, false);
    do {
      used[size_t(j0)] = true;
      const int i0 = p[size_t(j0)];
      double delta = inf;
      int j1 = 0;
      for (int j = 1; j <= m; ++j)
        if (!used[size_t(j)]) {
          const double cur = double(cost(i0 - 1, j - 1)) - u[size_t(i0)] - v[size_t(j)];
          if (cur < minv[size_t(j)]) {
            minv[size_t(j)] = cur;
            way[size_t(j)] = j0;
          }
          if (minv[size_t(j)] < delta) {
            delta = minv[size_t(j)];
            j1 = j;
          }
        }
      for (int j = 0; j <= m; ++j)
        if (used[size_t(j)]) {
          u[size_t(p[size_t(j)])] += delta;
          v[size_t(j)] -= delta;
        } else
          minv[size_t(j)] -= delta;
      j0 = j1;
    } while (p[size_t(j0)] != 0);
    do {
      const int j1 = way[size_t(j0)];
      p[size_t(j0)] = p[size_t(j1)];
      j0 = j1;
    } while (j0);
  }
  std::vector<int> col_of(size_t(n), -1);
  for (int j = 1; j <= m; ++j)
    if (p[size_t(j)]) col_of[size_t(p[size_t(j)] - 1)] = j - 1;
  return col_of;
}

namespace {

double total_similarity(const Matrix& sim, const std::vector<int>& group_of) {
  double t = 0;
  for (size_t a = 0; a < group_of.size(); ++a)
    for (size_t b = a + 1; b < group_of.size(); ++b)
      if (group_of[a] == group_of[b]) t += sim(int64_t(a), int64_t(b));
  return t;
}

// Numbers groups by their first head so equal partitions give equal maps.
std::vector<int> canonical(const std::vector<int>& group_of) {
  std::vector<int> rename(group_of.size(), -1), out(group_of.size());
  int next = 0;
  for (size_t h = 0; h < group_of.size(); ++h) {
    int& r = rename[size_t(group_of[h])];
    if (r < 0) r = next++;
    out[h] = r;
  }
  return out;
}

}  // namespace

std::vector<int> balanced_groups(const Matrix& sim, const std::vector<int>& sizes, uint64_t seed) {
  const int n = int(sim.rows()), k = int(sizes.size());
  if (std::accumulate(sizes.begin(), sizes.end(), 0) != n)
    throw InputError("grouping", "sizes", "do not add up to the head count");
  // Column j of the assignment is a slot of group slot_group[j].
  std::vector<int> slot_group;
  for (int g = 0; g < k; ++g) slot_group.insert(slot_group.end(), size_t(sizes[size_t(g)]), g);
  std::mt19937_64 rng(seed);
  std::vector<int> best;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int restart = 0; restart < 4; ++restart) {
    // Farthest-point seeds: a random first medoid, then the head least similar to those chosen.
    std::vector<int> medoids = {int(rng() % uint64_t(n))};
    while (int(medoids.size()) < k) {
      int pick = -1;
      double lowest = std::numeric_limits<double>::infinity();
      for (int h = 0; h < n; ++h) {
        if (std::find(medoids.begin(), medoids.end(), h) != medoids.end()) continue;
        double closest = -std::numeric_limits<double>::infinity();
        for (int m : medoids) closest = std::max(closest, double(sim(h, m)));
        if (closest < lowest) {
          lowest = closest;
          pick = h;
        }
      }
      medoids.push_back(pick);
    }
    std::vector<int> group_of(size_t(n), 0);
    for (int round = 0; round < 20; ++round) {
      // Cost of head h in a slot of group g: minus its mean similarity to the group's current
      // members (first round: to the seed medoid).
      Matrix cost(n, n);
      for (int h = 0; h < n; ++h)
        for (int j = 0; j < n; ++j) {
          const int g = slot_group[size_t(j)];
          double s = 0;
          int cnt = 0;
          if (round == 0) {
            s = sim(h, medoids[size_t(g)]);
            cnt = 1;
          } else {
            for (int o = 0; o < n; ++o)
              if (o != h && group_of[size_t(o)] == g) {
                s += sim(h, o);
                ++cnt;
              }
          }
          cost(h, j) = float(cnt ? -s / cnt : 0.0);
        }
      std::vector<int> slot = hungarian(cost), next(static_cast<size_t>(n));
      for (int h = 0; h < n; ++h) next[size_t(h)] = slot_group[size_t(slot[size_t(h)])];
      if (next == group_of) break;
      group_of = next;
    }
    // Local improvement: swap two heads of different groups while that raises the total.
    for (bool improved = true; improved;) {
      improved = false;
      for (int a = 0; a < n; ++a)
        for (int b = a + 1; b < n; ++b) {
          const int ga = group_of[size_t(a)], gb = group_of[size_t(b)];
          if (ga == gb) continue;
          double delta = 0;
          for (int o = 0; o < n; ++o) {
            if (o == a || o == b) continue;
            if (group_of[size_t(o)] == ga) delta += sim(b, o) - sim(a, o);
            if (group_of[size_t(o)] == gb) delta += sim(a, o) - sim(b, o);
          }
          if (delta > 1e-9) {
            std::swap(group_of[size_t(a)], group_of[size_t(b)]);
            improved = true;
          }
        }
    }
    const double score = total_similarity(sim, group_of);
    if (score > best_score + 1e-12) {
      best_score = score;
      best = group_of;
    }
  }
  return canonical(best);
}

}  // namespace gqa
