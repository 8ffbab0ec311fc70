// A random attention block in MHA form for the latent-attention tests (test_latent.cpp,
// test_latent_runtime.cpp): normal weights of scale 1/sqrt(d), biases when asked for, and with
// `tied` every head's key equal to head 0's.
#pragma once
#include <cmath>
#include <random>

#include "convert/attention_weights.h"

namespace gqa::test {

inline AttentionWeights random_mha_block(int n, int64_t dh, int64_t d, bool biases, uint32_t seed, bool tied = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f / std::sqrt(float(d)));
  const auto matrix = [&](int64_t rows, int64_t cols) {
    Matrix m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
    return m;
  };
  const auto vector = [&](int64_t size) {
    Vector v(biases ? size : 0);
    for (int64_t i = 0; i < v.size(); ++i) v[i] = normal(rng);
    return v;
  };
  AttentionWeights w;
  w.layout = AttentionLayout::even(n, n, int(dh), int(dh));
  w.q = matrix(n * dh, d);
  w.k = matrix(n * dh, d);
  w.v = matrix(n * dh, d);
  w.o = matrix(d, n * dh);
  w.q_bias = vector(n * dh);
  w.k_bias = vector(n * dh);
  w.v_bias = vector(n * dh);
  w.o_bias = vector(d);
  if (tied)
    for (int h = 1; h < n; ++h) w.k_head(h) = w.k_head(0);
  return w;
}

}  // namespace gqa::test
