// KV cache for incremental decoding: per layer K [B, n_kv, capacity, d_qk] and V [B, n_kv,
// capacity, d_v], allocated once for a maximum length and written in place, so it holds only the
// KV heads (a grouped model's cache really is smaller). Slots are token positions in the batch's
// padded layout; `valid` marks which slots hold real tokens (left padding leaves holes).
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "core/config.h"
#include "core/model/layers.h"

namespace gqa {

class KVCache {
 public:
  KVCache(const std::vector<AttentionLayout>& layouts, int64_t batch, int64_t capacity, const Placement& p);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // slots filled so far
  int64_t bytes() const;                      // K + V storage of all layers

  // Starts a step of T tokens: marks their slots valid per `mask` [B, T] and returns the position
  // id of each token (real tokens count on from the previous ones; pads get 0). Throws when the
  // step would pass the capacity.
  at::Tensor begin_step(const at::Tensor& mask);
  // Writes layer `l`'s new K [B, n_kv, T, d] / V into slots [length, length+T) and returns views of
  // all filled slots [0, length+T). A latent layer (AttentionLayout::is_latent) stores only K =
  // [latent | rotary key] [B, 1, T, rank + rope dims]; its V is the latent, a view of K, so `v` is
  // not copied.
  std::pair<at::Tensor, at::Tensor> append(size_t l, const at::Tensor& k, const at::Tensor& v);
  // Valid flags of slots [0, length+T) during a step: [B, length+T].
  at::Tensor valid_keys(int64_t step_len) const { return valid_.narrow(1, 0, length_ + step_len); }
  void end_step(int64_t step_len) { length_ += step_len; }

  // Keeps rows `rows` [N] (int64, may repeat) of the batch, in that order: beam search expands
  // each prompt to its beams and then follows the surviving beams.
  void select_rows(const at::Tensor& rows);

  // Cross-attention memory (T5): K/V of the encoder output per layer, computed once per batch.
  std::vector<std::pair<at::Tensor, at::Tensor>> cross;

 private:
  int64_t batch_, capacity_, length_ = 0;
  std::vector<at::Tensor> k_, v_;     // a latent layer's v_ is a view of its k_ (the latent dims)
  std::vector<int64_t> latent_rank_;  // per layer; 0 = K and V stored apart
  at::Tensor valid_;                  // [B, capacity] bool
  at::Tensor next_position_;          // [B] int64
};

}  // namespace gqa
