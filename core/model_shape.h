// The small shape description of a fresh model (`gqa train --config`), any family and grouping.
// core/init_model.h turns it into a config.json and weights; each family file (core/families/)
// says how its config.json states it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"

namespace gqa {

struct ModelShape {
  Family family = Family::Llama;
  int64_t n_layers = 4, n_encoder_layers = 0;  // T5: encoder layers (0 = same as n_layers)
  int64_t d_model = 256, n_heads = 4;
  int64_t head_dim = 0;                          // 0 = d_model / n_heads (Llama and T5 may differ)
  std::optional<int> kv_heads;                   // even contiguous groups
  std::optional<std::vector<int>> group_map;     // uneven groups (query head -> KV head)
  std::optional<int> qk_head_dim, v_head_dim;    // KQV: smaller per-head sizes
  int64_t ffn_dim = 0;                           // 0 = family default (see default_ffn_dim)
  int64_t vocab_size = 0, max_positions = 1024;  // max_positions: not for T5 (relative positions)
  std::string activation;                        // empty = family default (see make_config)
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
  std::optional<int64_t> window_size;  // GPT-Neo local window (attention types alternate)
};

}  // namespace gqa
