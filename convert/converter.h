// gqa convert: streams a checkpoint, turns the chosen attention blocks into grouped blocks with a
// strategy, copies every other tensor through unchanged, and writes a self-describing folder
// (config.json carries the layouts and how it was made) atomically.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "convert/calibration_store.h"
#include "convert/strategy.h"
#include "core/checkpoint.h"

namespace gqa {

// --target mla: the chosen blocks become latent attention (convert/latent.h) instead of grouped.
struct LatentTarget {
  int64_t rank = 0;                  // --kv-rank: latent dims per token
  std::optional<int64_t> rope_dims;  // --rope-dims: rotary key dims; default one head's rotary dims
};

// The latent target that caches per token what `kv_heads` GQA heads of the model's first decoder
// block cache (K and V): a rotary key of one head's rotary dims (the deepseek_v3 layout; none
// without RoPE), the rest latent, capped at d_model (which already spans every key and value).
LatentTarget latent_at_kv_heads(const ModelConfig& cfg, int kv_heads);

struct ConvertOptions {
  std::string strategy = "mean";
  std::optional<int> kv_heads;                // even contiguous groups
  bool mqa = false;                           // one KV head
  std::optional<std::vector<int>> group_map;  // explicit (uneven) groups
  std::set<AttentionModule> modules;          // empty: decoder self (+ cross for T5)
  std::optional<std::set<int64_t>> layers;    // only these layers (others keep their layout)
  uint64_t seed = 0;
  bool force = false;                          // replace an existing output folder
  bool export_expanded = false;                // write MHA-shaped weights (KV heads repeated) instead
  bool keep_layout = false;                    // every block keeps its own grouping (gqa fold)
  std::optional<int> qk_head_dim, v_head_dim;  // "KQV": smaller query/key and value heads (head_dims.h)
  bool match_params = false;                   // widen the FFNs by what attention saved (ffn.h)
  std::optional<LatentTarget> latent;          // --target mla (then no grouping options)
  // Calibration per (module, layer) for strategies that use activations.
  const CalibrationStore* calibration = nullptr;
};

struct ConvertSummary {
  int64_t blocks = 0;
  int64_t kv_bytes_per_token_before = 0, kv_bytes_per_token_after = 0;  // fp32-sized, per sequence
  int64_t params_before = 0, params_after = 0;
  int64_t ffn_dim_before = 0, ffn_dim_after = 0;
  std::vector<std::string> block_reports;  // "decoder_self 3: ..." lines from the strategy
  bool replaced = false;                   // --force replaced an existing folder
};

ConvertSummary convert_checkpoint(const std::string& in_dir, const std::string& out_dir, const ConvertOptions& opts,
                                  std::ostream* progress = nullptr);

// gqa fold: bakes the learned WGQA scalars of a weighted folder into plain GQA weights. The result
// computes the same function with a KV cache and weights of an ordinary grouped model.
ConvertSummary fold_checkpoint(const std::string& in_dir, const std::string& out_dir, bool force,
                               std::ostream* progress = nullptr);

}  // namespace gqa
