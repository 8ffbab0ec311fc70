// The latent attention runtime (core/model/latent_attention.*) on blocks folded by
// convert/latent.*: at full rank its output equals the MHA block's (core/model/attention.*) with
// RoPE, partial rotary and biases; decoding token by token over a KVCache that holds only the
// latent and the rotary key gives the same outputs as the whole sequence at once; the cache is
// rank + rope dims per token.
#include <gtest/gtest.h>

#include "convert/latent.h"
#include "core/model/attention.h"
#include "core/model/latent_attention.h"
#include "tests/convert/random_block.h"

namespace gqa {
namespace {

at::Tensor tensor_of(const Matrix& m) {
  return at::from_blob(const_cast<float*>(m.data()), {m.rows(), m.cols()}, at::kFloat).clone();
}
at::Tensor tensor_of(const Vector& v) {
  if (v.size() == 0) return at::Tensor();
  return at::from_blob(const_cast<float*>(v.data()), {v.size()}, at::kFloat).clone();
}
Linear linear_of(const Matrix& w, const Vector& b) { return {tensor_of(w), tensor_of(b)}; }

struct Pair {
  Attention mha;
  LatentAttention latent;
  std::optional<Rope> rope;
};

Pair make_pair(const AttentionWeights& w, int64_t rotary, int64_t rank, int64_t rope_dims) {
  const int64_t dh = w.layout.head_dim_qk;
  Pair p;
  p.mha.q = linear_of(w.q, w.q_bias);
  p.mha.k = linear_of(w.k, w.k_bias);
  p.mha.v = linear_of(w.v, w.v_bias);
  p.mha.o = linear_of(w.o, w.o_bias);
  p.mha.layout = w.layout;
  p.mha.scale = 1.0 / std::sqrt(double(dh));
  p.mha.group_index = at::arange(w.layout.n_q, at::kLong);
  RopeConfig rc;
  rc.type = RopeType::Default;
  if (rotary > 0) p.rope.emplace(rc, rotary, Placement{at::kCPU, at::kFloat});

  LatentOptions o;
  o.rank = rank;
  o.rope = rotary > 0;
  o.rotary_dims = rotary;
  o.rope_dims = rope_dims;
  const LatentAttentionWeights l = latent_fold(w, o);
  LatentAttention& a = p.latent;
  a.q = linear_of(l.q, l.q_bias);
  a.kv_a = linear_of(l.kv_a, l.kv_a_bias);
  a.kv_b = linear_of(l.kv_b, l.kv_b_bias);
  a.o = linear_of(l.o, l.o_bias);
  a.n_heads = l.n_heads;
  a.nope_dims = l.nope_dims;
  a.rope_dims = l.rope_dims;
  a.rank = l.rank;
  a.value_dims = l.value_dims;
  a.scale = p.mha.scale;
  if (p.rope) {
    std::vector<int64_t> pairs(l.rope_pairs.begin(), l.rope_pairs.end());
    a.rope_inv_freq = p.rope->inv_freq.index_select(0, at::tensor(pairs, at::kLong));
  }
  return p;
}

at::Tensor mha_output(const Pair& p, const at::Tensor& x, const at::Tensor& positions) {
  const auto cos_sin = p.rope ? p.rope->cos_sin(positions, at::kFloat) : std::pair<at::Tensor, at::Tensor>();
  return p.mha.self_attention(x, at::Tensor(), p.rope ? &*p.rope : nullptr, cos_sin, nullptr, 0);
}

struct Shape {
  const char* name;
  int64_t rotary;
  bool biases;
};

class LatentRuntime : public ::testing::TestWithParam<Shape> {};

TEST_P(LatentRuntime, FullRankEqualsMhaAndDecodesFromTheLatentCache) {
  const Shape s = GetParam();
  const int n = 4;
  const int64_t dh = 8, d = 32, B = 2, T = 7;
  const AttentionWeights w = test::random_mha_block(n, dh, d, s.biases, 3);
  const Pair p = make_pair(w, s.rotary, d, n * s.rotary);
  at::manual_seed(5);
  const at::Tensor x = at::randn({B, T, d});
  const at::Tensor positions = at::arange(T, at::kLong).unsqueeze(0).expand({B, T});
  const at::Tensor want = mha_output(p, x, positions);
  const at::Tensor whole = p.latent.self_attention(x, at::Tensor(), positions, nullptr, 0);
  EXPECT_TRUE(at::allclose(whole, want, 1e-4, 1e-5)) << (whole - want).abs().max().item<float>();

  // Token by token over a cache of [latent | rotary key] only.
  const AttentionLayout layout = p.latent.layout();
  KVCache cache({layout}, B, T, Placement{at::kCPU, at::kFloat});
  EXPECT_EQ(cache.bytes(), B * T * (d + n * s.rotary) * int64_t(sizeof(float)));
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor step_positions = cache.begin_step(at::ones({B, 1}, at::kLong));
    const at::Tensor mask = attention_mask(cache.valid_keys(1), t, 1, /*causal=*/true);
    const at::Tensor out = p.latent.self_attention(x.narrow(1, t, 1), mask, step_positions, &cache, 0);
    cache.end_step(1);
    EXPECT_TRUE(at::allclose(out, want.narrow(1, t, 1), 1e-4, 1e-5))
        << "token " << t << ": " << (out - want.narrow(1, t, 1)).abs().max().item<float>();
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LatentRuntime,
                         ::testing::Values(Shape{"no_rope_biases", 0, true}, Shape{"rope", 8, false},
                                           Shape{"partial_rotary_biases", 4, true}),
                         [](const ::testing::TestParamInfo<Shape>& info) { return std::string(info.param.name); });

// Below full rank the cache shrinks to rank + rope dims per token, and beam search's row
// selection keeps the values a view of the latent.
TEST(LatentRuntime, ReducedCacheAndRowSelection) {
  const AttentionWeights w = test::random_mha_block(4, 8, 32, false, 9);
  const Pair p = make_pair(w, 8, 12, 4);
  const AttentionLayout layout = p.latent.layout();
  EXPECT_EQ(layout.cache_dims_per_token(), 16);
  EXPECT_EQ(layout.describe(), "4q/1kv [4] qk12 v8 latent12 rope4");
  KVCache cache({layout}, 2, 5, Placement{at::kCPU, at::kFloat});
  EXPECT_EQ(cache.bytes(), 2 * 5 * 16 * int64_t(sizeof(float)));
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 3, 32});
  const at::Tensor positions = cache.begin_step(at::ones({2, 3}, at::kLong));
  p.latent.self_attention(x, attention_mask(cache.valid_keys(3), 0, 3, true), positions, &cache, 0);
  cache.end_step(3);
  cache.select_rows(at::tensor(std::vector<int64_t>{1, 1}, at::kLong));
  const auto [k, v] = cache.append(0, at::zeros({2, 1, 1, 16}), at::Tensor());
  EXPECT_TRUE(at::equal(v, k.narrow(-1, 0, 12)));
  EXPECT_TRUE(at::equal(k[0], k[1]));
}

}  // namespace
}  // namespace gqa
