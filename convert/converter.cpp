#include "convert/converter.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>

#include "convert/blas.h"
#include "convert/ffn.h"
#include "convert/grouping.h"
#include "convert/head_dims.h"
#include "convert/latent_tensors.h"
#include "core/arch.h"
#include "core/error.h"
#include "core/family.h"

namespace gqa {
namespace {

using json = nlohmann::json;

std::string block_name(const BlockKey& k) { return std::string(module_name(k.first)) + " " + std::to_string(k.second); }

// The grouping every converted block gets, from --kv-heads / --mqa / --group-map.
std::vector<int> target_group_map(const ConvertOptions& o, int n_q) {
  const int given = int(o.kv_heads.has_value()) + int(o.mqa) + int(o.group_map.has_value());
  // Only smaller heads asked for: every head keeps its own KV head.
  if (given == 0 && (o.qk_head_dim || o.v_head_dim)) return even_group_map(n_q, n_q);
  if (given != 1) throw InputError("--kv-heads/--mqa/--group-map", "", "give exactly one of them");
  if (o.mqa) return even_group_map(n_q, 1);
  if (o.group_map) {
    validate_group_map(*o.group_map, n_q, "--group-map", "");
    return *o.group_map;
  }
  const int k = *o.kv_heads;
  if (k <= 0) throw InputError("--kv-heads", "", "must be positive");
  if (k > n_q)
    throw InputError("--kv-heads", "",
                     std::to_string(k) + " is more than the model's " + std::to_string(n_q) + " query heads");
  if (n_q % k != 0) {
    // An example for this model: k groups as even as they can be, the larger ones first.
    std::string example;
    for (int g = 0, h = 0; g < k; ++g)
      for (int i = 0; i < n_q / k + (g < n_q % k ? 1 : 0); ++i, ++h) example += (h ? "," : "") + std::to_string(g);
    throw InputError("--kv-heads", "",
                     std::to_string(k) + " does not divide " + std::to_string(n_q) +
                         " query heads; give uneven groups with --group-map (e.g. " + example + ")");
  }
  return even_group_map(n_q, k);
}

// --target mla's options checked against the model (nullopt for a grouping conversion): the
// rotary key defaults to one head's rotary dims, the deepseek_v3 layout.
std::optional<LatentOptions> latent_options(const ConvertOptions& o, const ModelConfig& cfg) {
  if (!o.latent) return std::nullopt;
  if (o.kv_heads || o.mqa || o.group_map || o.qk_head_dim || o.v_head_dim || o.match_params || o.export_expanded ||
      o.strategy != "mean")
    throw InputError("--target", "mla",
                     "takes --kv-rank and --rope-dims, not --strategy, --kv-heads, --mqa, --group-map, head dims, "
                     "--match-params or --export");
  for (const auto& [module, layouts] : cfg.layouts)
    for (const AttentionLayout& l : layouts)
      if (l.is_latent()) throw InputError(cfg.path, "gqa_latent", "already latent attention; convert its source");
  if (!cfg.rope_pairs.empty())
    throw InputError(cfg.path, "gqa_rope_pairs",
                     "--target mla needs every rotary pair of the source (no --qk-head-dim)");
  LatentOptions l;
  l.rank = o.latent->rank;
  l.rope = cfg.rope.type != RopeType::None;
  l.rotary_dims = cfg.rotary_dims();
  const int64_t turned = l.rope ? cfg.rotary_dims() : 0;
  l.rope_dims = o.latent->rope_dims.value_or(turned);
  if (l.rank < 1 || l.rank > cfg.d_model)
    throw InputError("--kv-rank", "",
                     "must be between 1 and d_model = " + std::to_string(cfg.d_model) +
                         " (which already spans every key and value)");
  if (!l.rope && l.rope_dims != 0)
    throw InputError(
        "--rope-dims", "",
        std::string(family_name(cfg.family)) + " has no rotary embeddings: its latent needs no rotary key");
  if (l.rope_dims < 0 || l.rope_dims % 2 || l.rope_dims > cfg.n_heads * turned)
    throw InputError("--rope-dims", "",
                     "must be even and at most heads x rotary dims = " + std::to_string(cfg.n_heads * turned));
  return l;
}

}  // namespace

LatentTarget latent_at_kv_heads(const ModelConfig& cfg, int kv_heads) {
  const AttentionLayout& l = cfg.layout(AttentionModule::DecoderSelf, 0);
  const int64_t dims = int64_t(kv_heads) * (l.head_dim_qk + l.head_dim_v);
  const int64_t rope = cfg.rope.type != RopeType::None ? std::min<int64_t>(cfg.rotary_dims(), (dims - 1) / 2 * 2) : 0;
  return {std::min<int64_t>(dims - rope, cfg.d_model), rope};
}

ConvertSummary fold_checkpoint(const std::string& in_dir, const std::string& out_dir, bool force,
                               std::ostream* progress) {
  const ModelConfig cfg = load_config(in_dir);
  if (cfg.weighted.empty())
    throw InputError(cfg.path, "gqa_weighted", "not a weighted (WGQA) folder: there are no scalars to fold");
  // read_attention already pools a weighted block with its scalars; keeping the first (only)
  // copy of each pooled head per group writes exactly those weights.
  ConvertOptions o;
  o.strategy = "first";
  o.keep_layout = true;
  o.modules = cfg.weighted;
  o.force = force;
  return convert_checkpoint(in_dir, out_dir, o, progress);
}

ConvertSummary convert_checkpoint(const std::string& in_dir, const std::string& out_dir, const ConvertOptions& opts,
                                  std::ostream* progress) {
  Checkpoint in(in_dir);
  const ModelConfig& cfg = in.config();
  const Strategy strategy = find_strategy(opts.strategy);
  if (!strategy) {
    std::string names;
    for (const auto& n : strategy_names()) names += (names.empty() ? "" : ", ") + n;
    throw InputError("--strategy", "", "unknown '" + opts.strategy + "' (expected one of: " + names + ")");
  }
  std::set<AttentionModule> modules = opts.modules;
  if (modules.empty()) {
    modules = {AttentionModule::DecoderSelf};
    if (cfg.is_encoder_decoder()) modules.insert(AttentionModule::DecoderCross);
  }
  for (AttentionModule m : modules)
    if (!cfg.layouts.count(m))
      throw InputError("--modules", "",
                       std::string(family_name(cfg.family)) + " has no " + module_name(m) + " attention");
  const std::optional<LatentOptions> latent = latent_options(opts, cfg);
  const std::vector<int> target =
      opts.keep_layout || latent ? std::vector<int>() : target_group_map(opts, int(cfg.n_heads));
  const bool keeps_scales = strategy_keeps_scales(opts.strategy);
  if (keeps_scales && opts.export_expanded)
    throw InputError("--export", "expanded", "a weighted (WGQA) folder must be uptrained and folded first (gqa fold)");
  const bool reduce = opts.qk_head_dim || opts.v_head_dim;
  if (reduce && keeps_scales)
    throw InputError("--qk-head-dim/--kv-head-dim", "",
                     "cannot be combined with a weighted strategy (fold first, then reduce)");
  const bool rope_pairs = opts.qk_head_dim && cfg.rope.type != RopeType::None;
  if (opts.qk_head_dim && cfg.rotary_dim > 0)
    throw InputError("--qk-head-dim", "",
                     std::string("not supported with partial rotary embeddings (") + family_name(cfg.family) +
                         " turns " + std::to_string(cfg.rotary_dim) + " of " + std::to_string(cfg.head_dim) +
                         " dims per head); --v-head-dim is");
  if (rope_pairs && *opts.qk_head_dim % 2 != 0)
    throw InputError("--qk-head-dim", "", "must be even with rotary embeddings (whole frequency pairs are kept)");

  // Which blocks to convert.
  std::vector<BlockKey> blocks;
  for (AttentionModule m : modules)
    for (int64_t l = 0; l < int64_t(cfg.layouts.at(m).size()); ++l)
      if (!opts.layers || opts.layers->count(l)) blocks.push_back({m, l});
  if (opts.layers)
    for (int64_t l : *opts.layers)
      if (l >= cfg.n_layers && (!cfg.is_encoder_decoder() || l >= cfg.n_encoder_layers))
        throw InputError("--layers", "", "layer " + std::to_string(l) + " does not exist");

  for (const BlockKey& key : blocks) {  // reject sizes before anything is written
    const AttentionLayout& l = cfg.layout(key.first, key.second);
    if (opts.qk_head_dim && (*opts.qk_head_dim <= 0 || *opts.qk_head_dim > l.head_dim_qk))
      throw InputError("--qk-head-dim", "", "must be between 1 and the current " + std::to_string(l.head_dim_qk));
    if (opts.v_head_dim && (*opts.v_head_dim <= 0 || *opts.v_head_dim > l.head_dim_v))
      throw InputError("--v-head-dim", "", "must be between 1 and the current " + std::to_string(l.head_dim_v));
  }

  // Rotary models keep whole frequency pairs, one set for the model, chosen on the source blocks.
  std::vector<int> kept_pairs;
  if (rope_pairs) {
    std::vector<AttentionWeights> sources;
    for (const BlockKey& key : blocks) sources.push_back(expand_to_mha(read_attention(in, key.first, key.second)));
    kept_pairs = choose_rope_pairs(sources, *opts.qk_head_dim / 2);
  }

  // Converted blocks are computed when the writer first asks for one of their tensors, one block
  // at a time (tensors of a block sit next to each other in name order), so memory stays near
  // one block plus the writer's buffer.
  struct State {
    std::map<BlockKey, AttentionLayout> layouts;
    std::map<BlockKey, std::string> reports;
    BlockKey cached{AttentionModule::DecoderSelf, -1};
    AttentionWeights weights;
    Vector k_scale, v_scale;
  };
  auto state = std::make_shared<State>();
  auto compute = [&in, &opts, &target, &kept_pairs, strategy, state, &cfg, progress,
                  n_blocks = blocks.size()](const BlockKey& key) -> const AttentionWeights& {
    if (state->cached == key) return state->weights;
    const AttentionWeights mha = expand_to_mha(read_attention(in, key.first, key.second));
    const BlockCalibration* calib = opts.calibration ? opts.calibration->find(key) : nullptr;
    const std::vector<int>& groups = opts.keep_layout ? cfg.layout(key.first, key.second).group_of : target;
    StrategyInput si{mha,
                     groups,
                     opts.seed + uint64_t(key.second) * 1000003u + uint64_t(key.first),
                     cfg.rope.type != RopeType::None,
                     calib,
                     cfg.spec().positions == Positions::Relative && key.first != AttentionModule::DecoderCross,
                     cfg.rotary_dims()};
    StrategyOutput out = strategy(si);
    // gqa fold keeps the first copy of each pooled head (read_attention pooled them with the
    // scalars already); "kept heads ..." would read like the `first` strategy.
    if (opts.keep_layout) out.report = "scalars folded into " + std::to_string(out.weights.layout.n_kv) + " KV heads";
    if (!kept_pairs.empty()) out.weights = keep_rope_pairs(out.weights, kept_pairs);
    if (opts.v_head_dim || (opts.qk_head_dim && kept_pairs.empty()))
      out.weights = reduce_head_dims(out.weights,
                                     kept_pairs.empty() ? opts.qk_head_dim.value_or(out.weights.layout.head_dim_qk)
                                                        : out.weights.layout.head_dim_qk,
                                     opts.v_head_dim.value_or(out.weights.layout.head_dim_v));
    state->layouts[key] = out.weights.layout;
    if (!state->reports.count(key)) {
      state->reports[key] = out.report;
      if (progress)
        *progress << "  converted " << block_name(key) << " (" << state->reports.size() << "/" << n_blocks << ")"
                  << (out.report.empty() ? "" : ": " + out.report) << "\n";
    }
    state->k_scale = out.k_scale;
    state->v_scale = out.v_scale;
    state->weights = opts.export_expanded ? expand_to_mha(out.weights) : std::move(out.weights);
    state->cached = key;
    return state->weights;
  };

  // Latent blocks: the same one-block-at-a-time folding.
  struct LatentState {
    BlockKey cached{AttentionModule::DecoderSelf, -1};
    LatentAttentionWeights weights;
  };
  auto latent_state = std::make_shared<LatentState>();
  auto fold = [&in, &opts, &latent, state, latent_state, progress,
               n_blocks = blocks.size()](const BlockKey& key) -> const LatentAttentionWeights& {
    if (latent_state->cached == key) return latent_state->weights;
    LatentOptions lo = *latent;
    lo.calib = opts.calibration ? opts.calibration->find(key) : nullptr;
    if (key.first == AttentionModule::DecoderCross || in.config().spec().positions != Positions::Rotary)
      lo.rope = false;
    latent_state->weights = latent_fold(expand_to_mha(read_attention(in, key.first, key.second)), lo);
    state->layouts[key] = latent_state->weights.layout();
    if (!state->reports.count(key)) {
      state->reports[key] = latent_state->weights.report;
      if (progress)
        *progress << "  converted " << block_name(key) << " (" << state->reports.size() << "/" << n_blocks
                  << "): " << latent_state->weights.report << "\n";
    }
    latent_state->cached = key;
    return latent_state->weights;
  };

  CheckpointWriter writer(out_dir, opts.force);
  // Every option and the output folder are checked by now: a bad request prints only its error.
  if (progress)
    *progress << (opts.keep_layout ? "gqa fold: " : "gqa convert: ") << in_dir << " -> " << out_dir << " ("
              << family_name(cfg.family)
              << (opts.keep_layout ? ""
                  : latent         ? ", target mla"
                                   : ", strategy " + opts.strategy)
              << ")\n";
  // The fits whose large products go to BLAS (convert/blas.h): say when its kernels are slow ones.
  if (progress && (latent || opts.strategy == "svd" || opts.strategy == "similarity"))
    if (const std::string hint = blas_kernel_hint(); !hint.empty()) *progress << hint << "\n";
  std::set<std::string> replaced;
  int64_t params_after = in.parameter_count();
  for (const BlockKey& key : blocks) {
    const AttentionLayout& src = cfg.layout(key.first, key.second);
    if (latent) {
      const auto names = attention_tensor_names(in, key.first, key.second);
      const DType dtype = in.tensor(names.front()).dtype;
      for (const auto& n : names) params_after -= in.tensor(n).numel();
      for (auto& t : latent_tensors(in, key.first, key.second, latent_layout(src, *latent), dtype,
                                    [fold, key]() -> const LatentAttentionWeights& { return fold(key); })) {
        params_after += int64_t(t.nbytes / dtype_size(t.dtype));
        writer.add(std::move(t));
      }
      replaced.insert(names.begin(), names.end());
      continue;
    }
    const int n_groups = opts.keep_layout ? src.n_kv : *std::max_element(target.begin(), target.end()) + 1;
    AttentionLayout sized = src;  // tensor shapes need only the head counts and dims
    sized.n_kv = opts.export_expanded || keeps_scales ? src.n_q : n_groups;
    sized.head_dim_qk = opts.qk_head_dim.value_or(src.head_dim_qk);
    sized.head_dim_v = opts.v_head_dim.value_or(src.head_dim_v);
    const auto names = attention_tensor_names(in, key.first, key.second);
    const DType dtype = in.tensor(names.front()).dtype;
    for (const auto& n : names) params_after -= in.tensor(n).numel();
    for (auto& t : attention_tensors(in, cfg, key.first, key.second, sized, dtype,
                                     [compute, key]() -> const AttentionWeights& { return compute(key); })) {
      int64_t numel = 1;
      for (int64_t dim : t.shape) numel *= dim;
      params_after += numel;
      writer.add(std::move(t));
    }
    if (keeps_scales) {  // WGQA scalars, float32 [n_q] beside the block
      const AttentionRoles r = attention_roles(key.first);
      for (const bool is_k : {true, false}) {
        TensorToWrite t{new_role_tensor_name(in, r.stack, is_k ? r.k_scale : r.v_scale, key.second),
                        DType::F32,
                        {src.n_q},
                        size_t(src.n_q) * 4,
                        nullptr};
        t.fill = [compute, key, state, is_k](uint8_t* dst) {
          compute(key);
          const Vector& s = is_k ? state->k_scale : state->v_scale;
          std::memcpy(dst, s.data(), size_t(s.size()) * 4);
        };
        writer.add(std::move(t));
        params_after += src.n_q;
      }
    }
    replaced.insert(names.begin(), names.end());
  }
  // --match-params: spend what attention saved on wider FFNs (whole units per layer).
  int64_t extra_units = 0;
  if (opts.match_params) {
    const int64_t saved = in.parameter_count() - params_after;
    if (saved <= 0) throw InputError("--match-params", "", "the conversion saves no parameters to spend");
    extra_units = saved / ffn_unit_params(in);
    widen_ffn(in, extra_units, opts.seed, writer, &replaced);
    params_after += extra_units * ffn_unit_params(in);
  }
  // Everything else goes through byte for byte.
  for (const std::string& name : in.names()) {
    if (replaced.count(name)) continue;
    const TensorView& v = in.tensor(name);
    writer.add({name, v.dtype, v.shape, v.nbytes, [&v](uint8_t* dst) {
                  std::memcpy(dst, v.data, v.nbytes);
                  release_pages(v);
                }});
  }
  for (const auto& f : passthrough_files()) writer.copy_from(in_dir, f);
  writer.set_metadata(in.metadata());

  ConvertSummary summary;
  summary.blocks = int64_t(blocks.size());
  summary.params_before = in.parameter_count();
  summary.params_after = params_after;
  summary.ffn_dim_before = cfg.ffn_dim;
  summary.ffn_dim_after = cfg.ffn_dim + extra_units;
  writer.set_config_after_tensors([&]() {
    ModelConfig written = cfg;
    for (const auto& [key, l] : state->layouts)
      written.layouts[key.first][size_t(key.second)] =
          opts.export_expanded ? AttentionLayout::even(l.n_q, l.n_q, l.head_dim_qk, l.head_dim_v) : l;
    written.weighted.clear();
    if (keeps_scales) written.weighted = modules;
    if (!kept_pairs.empty()) written.rope_pairs = kept_pairs;
    json j = with_layout_fields(written);
    if (extra_units) j[ffn_dim_field(cfg.family)] = cfg.ffn_dim + extra_units;
    j["gqa_conversion"] = {{"strategy", opts.keep_layout ? "fold"
                                        : latent         ? "mla"
                                                         : opts.strategy},
                           {"source", in_dir},
                           {"seed", opts.seed},
                           {"export", opts.export_expanded ? "expanded" : "grouped"},
                           {"tool", "gqa 0.1.0"}};
    if (latent) {
      j["gqa_conversion"]["export"] = "latent";
      j["gqa_conversion"]["kv_rank"] = latent->rank;
      j["gqa_conversion"]["rope_dims"] = latent->rope_dims;
    }
    ModelConfig out_cfg = parse_config(j, out_dir + "/config.json");
    summary.kv_bytes_per_token_before = cfg.kv_bytes_per_token(4);
    summary.kv_bytes_per_token_after = out_cfg.kv_bytes_per_token(4);
    return j;
  });
  summary.replaced = writer.commit();
  for (const auto& [key, r] : state->reports)
    if (!r.empty()) summary.block_reports.push_back(block_name(key) + ": " + r);
  return summary;
}

}  // namespace gqa
