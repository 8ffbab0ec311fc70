#include "convert/deepseek_v3.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "convert/attention_weights.h"
#include "core/arch.h"
#include "core/error.h"

namespace gqa {
namespace {

using json = nlohmann::json;

// The one latent shape a deepseek_v3 config states for every layer.
struct LatentShape {
  int64_t n = 0, d = 0, rank = 0, rope = 0, nope = 0, dv = 0;
};

LatentShape deepseek_shape(const ModelConfig& c) {
  if (c.family != Family::Llama)
    throw InputError(c.path, "model_type",
                     std::string("the deepseek_v3 export takes Llama folders, not ") + family_name(c.family) +
                         " (gqa's own latent folders serve every family)");
  const std::vector<AttentionLayout>& layouts = c.layouts.at(AttentionModule::DecoderSelf);
  const AttentionLayout& first = layouts.front();
  LatentShape s{
      first.n_q,       c.d_model, first.latent_rank, first.latent_rope_dims, first.head_dim_qk - first.latent_rope_dims,
      first.head_dim_v};
  for (size_t l = 0; l < layouts.size(); ++l) {
    const AttentionLayout& a = layouts[l];
    const std::string where = "layer " + std::to_string(l);
    if (!a.is_latent())
      throw InputError(c.path, "gqa_latent", where + " is not latent attention (convert with --target mla first)");
    if (a.latent_rank != first.latent_rank || a.latent_rope_dims != first.latent_rope_dims ||
        a.head_dim_qk != first.head_dim_qk || a.head_dim_v != first.head_dim_v)
      throw InputError(c.path, "gqa_layers", where + " differs from layer 0; deepseek_v3 states one shape for all");
    // DeepSeek turns slot j at base^(-2j/D): the source's pair j when D is one head's rotary dims.
    bool deepseek_slots = a.latent_rope_dims == c.rotary_dims();
    for (size_t j = 0; deepseek_slots && j < a.latent_rope_pairs.size(); ++j)
      deepseek_slots = a.latent_rope_pairs[j] == int(j);
    if (!deepseek_slots)
      throw InputError(c.path, "gqa_latent",
                       "rotary key of " + std::to_string(a.latent_rope_dims) + " dims is not the deepseek layout (" +
                           std::to_string(c.rotary_dims()) + " dims, slot j at pair j: --rope-dims " +
                           std::to_string(c.rotary_dims()) + ")");
  }
  return s;
}

Matrix read(const Checkpoint& in, Role r, int64_t layer, const std::vector<int64_t>& shape) {
  HostTensor h = load_role(in, Stack::Decoder, r, layer, shape);
  return Eigen::Map<const Matrix>(h.data.data(), shape[0], shape.size() == 2 ? shape[1] : 1);
}

float stored_as(DType dtype, float value) {  // `value` after a round trip through `dtype`
  std::vector<uint8_t> bytes(dtype_size(dtype));
  from_float32(dtype, &value, 1, bytes.data());
  float back = 0;
  to_float32(dtype, bytes.data(), 1, &back);
  return back;
}

// One layer's deepseek_v3 attention tensors, Linear layout, biases as one column.
struct DeepseekBlock {
  Matrix q, kv_a, kv_a_bias, kv_a_norm, kv_b, o, o_bias;
};

constexpr double kNormEps = 1e-6;  // DeepseekV3RMSNorm's default, which kv_a_layernorm keeps

DeepseekBlock fold_layer(const Checkpoint& in, int64_t layer, const LatentShape& s, const DeepseekExportOptions& opts,
                         DType dtype) {
  const ModelConfig& c = in.config();
  const int64_t R = s.rank, D = s.rope, rows_kv_b = s.n * (s.nope + s.dv);
  auto optional_vector = [&](Role r, int64_t n) {
    return has_role(in, Stack::Decoder, r, layer) ? read(in, r, layer, {n}) : Matrix(Matrix::Zero(n, 1));
  };
  DeepseekBlock b;
  // The softmax scale: the source's head_dim^-0.5 where DeepSeek uses (nope + D)^-0.5.
  b.q = read(in, Role::LatentQ, layer, {s.n * (s.nope + D), s.d}) *
        float(std::sqrt(double(s.nope + D) / double(c.head_dim)));
  if (has_role(in, Stack::Decoder, Role::LatentQBias, layer))
    throw InputError(in.dir(), "q_proj.bias", "deepseek_v3's query projection has no bias");
  const Matrix kv_a = read(in, Role::LatentKvA, layer, {R + D, s.d});
  const Matrix kv_a_bias = optional_vector(Role::LatentKvABias, R + D);
  const Matrix kv_b = read(in, Role::LatentKvB, layer, {rows_kv_b, R});
  const bool kv_b_biased = has_role(in, Stack::Decoder, Role::LatentKvBBias, layer);
  const Matrix kv_b_bias = optional_vector(Role::LatentKvBBias, rows_kv_b);
  b.o = read(in, Role::AttnO, layer, {s.d, s.n * s.dv});
  b.o_bias = optional_vector(Role::AttnOBias, s.d);

  if (opts.norm == LatentNorm::Plain) {
    if (kv_b_biased)
      throw InputError(in.dir(), "kv_b_proj.bias",
                       "the plain export cannot carry it (deepseek_v3 has none); use anchor");
    const BlockCalibration* calib =
        opts.calibration ? opts.calibration->find({AttentionModule::DecoderSelf, layer}) : nullptr;
    if (!calib || calib->tokens <= 0) throw InputError("--calib", "", "the plain export needs calibration text");
    // E|c|^2 over the calibration tokens, c = [W | b] x^ for the latent rows.
    Eigen::MatrixXd w(R, s.d + 1);
    w.leftCols(s.d) = kv_a.topRows(R).cast<double>();
    w.col(s.d) = kv_a_bias.topRows(R).col(0).cast<double>();
    const double energy = (w * augmented_gram(calib, s.d) * w.transpose()).trace() / double(calib->tokens);
    b.kv_a = kv_a;
    b.kv_a_bias = kv_a_bias;
    b.kv_a_norm = Matrix::Constant(R, 1, float(std::sqrt(std::max(energy / double(R), 1e-12))));
    b.kv_b = kv_b;
    return b;
  }

  // Anchor: [c, A] with A far above any |c| the block can produce.
  const Matrix gamma = read(in, Role::AttnNorm, layer, {s.d});
  const double bound = double(kv_a.topRows(R).norm()) * std::sqrt(double(s.d)) * double(gamma.cwiseAbs().maxCoeff()) +
                       double(kv_a_bias.topRows(R).norm());
  const double anchor = std::exp2(std::ceil(std::log2(std::max(bound, 1e-3) * 1e4)));  // a power of 2: exact
  const double rho = std::sqrt(anchor * anchor / double(R + 1) + kNormEps);            // rms([c, A]) at c = 0
  const float norm_weight = stored_as(dtype, float(rho));
  b.kv_a = Matrix::Zero(R + 1 + D, s.d);
  b.kv_a.topRows(R) = kv_a.topRows(R);
  b.kv_a.bottomRows(D) = kv_a.bottomRows(D);
  b.kv_a_bias = Matrix::Zero(R + 1 + D, 1);
  b.kv_a_bias.topRows(R) = kv_a_bias.topRows(R);
  b.kv_a_bias(R, 0) = float(anchor);
  b.kv_a_bias.bottomRows(D) = kv_a_bias.bottomRows(D);
  b.kv_a_norm = Matrix::Constant(R + 1, 1, norm_weight);
  b.kv_a_norm(R, 0) = 1.0f;
  // The normed latent is c * norm_weight / rho; the anchor's is A / rho (about sqrt(R + 1)), and
  // its up-projection column carries the key/value biases.
  b.kv_b = Matrix::Zero(rows_kv_b, R + 1);
  b.kv_b.leftCols(R) = kv_b * float(rho / double(norm_weight));
  b.kv_b.col(R) = kv_b_bias.col(0) * float(rho / anchor);
  return b;
}

}  // namespace

DeepseekExportSummary export_deepseek_v3(const std::string& in_dir, const std::string& out_dir,
                                         const DeepseekExportOptions& opts, std::ostream* progress) {
  Checkpoint in(in_dir);
  const ModelConfig& c = in.config();
  const LatentShape s = deepseek_shape(c);
  const bool anchor = opts.norm == LatentNorm::Anchor;
  const int64_t kv_lora_rank = s.rank + (anchor ? 1 : 0);
  bool biased = anchor;  // attention_bias: the anchor is a bias of kv_a_proj_with_mqa
  for (int64_t l = 0; l < c.n_layers; ++l)
    biased = biased || has_role(in, Stack::Decoder, Role::LatentKvABias, l) ||
             has_role(in, Stack::Decoder, Role::AttnOBias, l);
  if (opts.norm == LatentNorm::Plain && !opts.calibration)
    throw InputError("--calib", "", "the plain export needs calibration text");

  // Tensors of each layer's attention, replaced; the layers are folded one at a time as the
  // writer reaches them (tensors of a layer sit together in name order).
  struct State {
    int64_t cached = -1;
    DeepseekBlock block;
  };
  auto state = std::make_shared<State>();
  const auto block_of = [&in, &s, &opts, state](int64_t layer, DType dtype) -> const DeepseekBlock& {
    if (state->cached != layer) {
      state->block = fold_layer(in, layer, s, opts, dtype);
      state->cached = layer;
    }
    return state->block;
  };
  CheckpointWriter writer(out_dir, opts.force);
  std::set<std::string> replaced;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string q_name = *role_tensor_name(in, Stack::Decoder, Role::LatentQ, l);
    const std::string prefix = q_name.substr(0, q_name.size() - std::string("q_proj.weight").size());
    const std::string o_name = *role_tensor_name(in, Stack::Decoder, Role::AttnO, l);
    const DType dtype = in.tensor(q_name).dtype;
    for (Role r : {Role::LatentQ, Role::LatentKvA, Role::LatentKvABias, Role::LatentKvB, Role::LatentKvBBias,
                   Role::AttnO, Role::AttnOBias})
      if (auto name = role_tensor_name(in, Stack::Decoder, r, l)) replaced.insert(*name);
    auto add = [&, l, dtype](const std::string& name, std::vector<int64_t> shape, Matrix DeepseekBlock::*part) {
      int64_t numel = 1;
      for (int64_t v : shape) numel *= v;
      writer.add({name, dtype, shape, size_t(numel) * dtype_size(dtype),
                  [block_of, l, dtype, part, numel, name](uint8_t* dst) {
                    const Matrix& m = block_of(l, dtype).*part;
                    if (m.size() != numel)
                      throw std::logic_error("deepseek_v3 export: " + name + " has the wrong size");
                    store_matrix(m, false, dtype, dst);
                  }});
    };
    add(q_name, {s.n * (s.nope + s.rope), s.d}, &DeepseekBlock::q);
    add(prefix + "kv_a_proj_with_mqa.weight", {kv_lora_rank + s.rope, s.d}, &DeepseekBlock::kv_a);
    if (biased) add(prefix + "kv_a_proj_with_mqa.bias", {kv_lora_rank + s.rope}, &DeepseekBlock::kv_a_bias);
    add(prefix + "kv_a_layernorm.weight", {kv_lora_rank}, &DeepseekBlock::kv_a_norm);
    add(prefix + "kv_b_proj.weight", {s.n * (s.nope + s.dv), kv_lora_rank}, &DeepseekBlock::kv_b);
    add(o_name, {s.d, s.n * s.dv}, &DeepseekBlock::o);
    if (biased)
      add(o_name.substr(0, o_name.size() - std::string("weight").size()) + "bias", {s.d}, &DeepseekBlock::o_bias);
  }
  for (const std::string& name : in.names()) {  // embeddings, norms, MLPs, head: the same names
    if (replaced.count(name)) continue;
    const TensorView& v = in.tensor(name);
    writer.add({name, v.dtype, v.shape, v.nbytes, [&v](uint8_t* dst) { std::memcpy(dst, v.data, v.nbytes); }});
  }
  for (const auto& f : passthrough_files())
    if (f != "config.json") writer.copy_from(in_dir, f);
  writer.set_metadata(in.metadata());

  json j;
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings", "rope_theta",
                          "rope_scaling", "rope_parameters", "initializer_range", "rms_norm_eps", "tie_word_embeddings",
                          "torch_dtype", "dtype", "hidden_act"})
    if (c.raw.contains(key)) j[key] = c.raw.at(key);
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = "deepseek_v3";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = c.ffn_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = s.n;
  j["num_key_value_heads"] = s.n;  // the attention expands the latent to every head
  j["q_lora_rank"] = nullptr;
  j["kv_lora_rank"] = kv_lora_rank;
  j["qk_rope_head_dim"] = s.rope;
  j["qk_nope_head_dim"] = s.nope;
  j["v_head_dim"] = s.dv;
  j["rope_interleave"] = false;  // gqa's rotary key is rotate-half, as Llama's heads
  j["attention_bias"] = biased;
  j["attention_dropout"] = 0.0;
  // A dense MLP in every layer: no expert is ever built (sizes only satisfy the config).
  j["first_k_dense_replace"] = c.n_layers;
  j["moe_intermediate_size"] = c.ffn_dim;
  j["n_routed_experts"] = 1;
  j["n_shared_experts"] = 1;
  j["num_experts_per_tok"] = 1;
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["routed_scaling_factor"] = 1.0;
  j["num_mtp_layers"] = 0;
  j["gqa_export"] = {{"format", "deepseek_v3"},
                     {"source", in_dir},
                     {"latent_norm", anchor ? "anchor" : "plain"},
                     {"tool", "gqa 0.1.0"}};
  writer.set_config(j);
  if (progress)
    *progress << "gqa export: " << in_dir << " -> " << out_dir << " (deepseek_v3, latent norm "
              << (anchor ? "anchor" : "plain") << ")\n";
  writer.commit();

  DeepseekExportSummary out;
  out.layers = c.n_layers;
  out.kv_lora_rank = kv_lora_rank;
  out.rope_dims = s.rope;
  out.kv_bytes_per_token = c.n_layers * (kv_lora_rank + s.rope) * 4;
  return out;
}

}  // namespace gqa
