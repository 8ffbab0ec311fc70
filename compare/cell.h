// One result of `gqa compare`: a conversion strategy at a KV-head count, an MLA conversion at the
// KV bytes of a KV-head count, or the MHA baseline, with its quality, decode speed and uptraining
// curves. Stored as one JSON file per finished cell so a resumed comparison reloads them.
// Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace gqa::report {

// Quality of one model on the held-out text. Every metric is optional: a comparison measures
// what its data allows (ROUGE needs a summarization set, minimal pairs their own file).
struct Quality {
  std::optional<double> perplexity;
  std::optional<double> bits_per_byte;
  std::optional<double> rouge1, rouge2, rouge_l;  // F-measures in [0, 1]
  std::optional<double> minimal_pair_accuracy;    // fraction in [0, 1]

  bool operator==(const Quality& other) const;
  bool operator!=(const Quality& other) const { return !(*this == other); }
};

struct LossPoint {
  int64_t step = 0;
  double loss = 0;
};

struct CellResult {
  std::string strategy;  // conversion strategy ("mean", "svd", ..., "mla"); for the baseline, e.g. "mha"
  // The baseline's KV heads = its query heads. An MLA cell: the GQA KV-head count whose KV cache
  // bytes its latent cache matches (2 of 8 heads: a quarter of MHA's KV bytes).
  int64_t kv_heads = 0;
  bool is_baseline = false;
  Quality step0;      // right after conversion, before any uptraining
  Quality uptrained;  // after uptraining (empty when the cell was not uptrained)
  // Batch size -> milliseconds per decoded token (one decode step; the caller picks the convention,
  // e.g. decode_bench's ms per step). Speedups are ratios at equal batch, so any one convention
  // used for every cell gives the same speedups. gqa compare reports the fastest of the repeats
  // (load only ever adds time); cells written before issue #20 hold the median.
  std::map<int64_t, double> decode_ms_per_token;
  // Batch size -> the spread of those repeats, max/min - 1 (0.05: the slowest took 5% longer).
  std::map<int64_t, double> decode_spread;
  // Batch size -> the MHA baseline's ms per token and spread, timed interleaved with this cell's
  // model (A, B, A, B, ...) so that load hits both: the cell's speedup is paired MHA time / own
  // time. Without it (the baseline itself, older cells) the speedup uses the baseline cell's time.
  std::map<int64_t, double> paired_mha_ms_per_token, paired_mha_spread;
  // Batch sizes whose timing stayed noisy: the repeats of the model or of its paired MHA run
  // disagreed by more than the threshold in the first pass and again in the one re-measure.
  std::set<int64_t> noisy_batches;
  std::optional<int64_t> kv_bytes_per_token;  // KV cache, all layers (an MLA cell: its latent cache)
  std::optional<int64_t> latent_rank;         // MLA: latent dims per token and layer (R)
  std::optional<int64_t> latent_rope_dims;    // MLA: shared rotary key dims per token and layer (D)
  std::optional<int64_t> parameters;
  std::vector<LossPoint> train_loss, valid_loss;  // uptraining curves, by step
  std::optional<double> wall_seconds;             // time spent on the cell (convert + uptrain + eval)

  // Non-finite numbers compare equal to themselves (NaN == NaN), so a cell equals its reload.
  bool operator==(const CellResult& other) const;
  bool operator!=(const CellResult& other) const { return !(*this == other); }
};

// JSON form: missing values are omitted; NaN and ±inf are written as the strings "NaN",
// "Infinity", "-Infinity" (JSON has no such numbers) and read back exactly; decode times and
// spreads are objects keyed by batch size ({"1": 0.8, "512": 0.02}); noisy_batches is an array of
// batch sizes; curves are [[step, loss], ...].
void to_json(nlohmann::json& j, const CellResult& cell);
void to_json(nlohmann::json& j, const Quality& quality);
// Unknown keys are ignored (results.json adds derived fields to each cell). Throws InputError
// naming `source` and the field when a value has the wrong type or is out of range.
CellResult cell_from_json(const nlohmann::json& j, const std::string& source);
void from_json(const nlohmann::json& j, CellResult& cell);  // cell_from_json(j, "")

// One cell per file, for resuming a comparison: written atomically (temp file + rename), read
// back with InputError(path, field, problem) on any defect.
void save_cell(const CellResult& cell, const std::string& path);
CellResult load_cell(const std::string& path);

// The text of cell files and results.json: indented JSON, except that arrays of numbers (a loss
// curve's [step, loss] pairs) stay on one line.
std::string pretty_json(const nlohmann::json& j);

}  // namespace gqa::report
