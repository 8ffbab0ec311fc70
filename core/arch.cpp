#include "core/arch.h"

#include <algorithm>
#include <cmath>

#include "core/checkpoint.h"
#include "core/error.h"

namespace gqa {
namespace {

struct Entry {
  Family family;
  Stack stack;
  Role role;
  const char* pattern;  // "{L}" is the layer index
  bool conv1d = false;
  int fused_part = -1;
  bool fused_per_head = false;
};

constexpr Stack D = Stack::Decoder;
constexpr Stack E = Stack::Encoder;

// The one table of HF tensor names. T5's gated FFN (v1.1/flan) names differ and are resolved in
// locate(); everything else is here.
const Entry kTable[] = {
    // GPT-2 (GPT2LMHeadModel; Conv1D weights are [in, out], q/k/v fused in c_attn).
    {Family::GPT2, D, Role::TokenEmbedding, "transformer.wte.weight"},
    {Family::GPT2, D, Role::PositionEmbedding, "transformer.wpe.weight"},
    {Family::GPT2, D, Role::FinalNorm, "transformer.ln_f.weight"},
    {Family::GPT2, D, Role::FinalNormBias, "transformer.ln_f.bias"},
    {Family::GPT2, D, Role::LmHead, "lm_head.weight"},
    {Family::GPT2, D, Role::AttnNorm, "transformer.h.{L}.ln_1.weight"},
    {Family::GPT2, D, Role::AttnNormBias, "transformer.h.{L}.ln_1.bias"},
    {Family::GPT2, D, Role::AttnQ, "transformer.h.{L}.attn.c_attn.weight", true, 0},
    {Family::GPT2, D, Role::AttnK, "transformer.h.{L}.attn.c_attn.weight", true, 1},
    {Family::GPT2, D, Role::AttnV, "transformer.h.{L}.attn.c_attn.weight", true, 2},
    {Family::GPT2, D, Role::AttnQBias, "transformer.h.{L}.attn.c_attn.bias", false, 0},
    {Family::GPT2, D, Role::AttnKBias, "transformer.h.{L}.attn.c_attn.bias", false, 1},
    {Family::GPT2, D, Role::AttnVBias, "transformer.h.{L}.attn.c_attn.bias", false, 2},
    {Family::GPT2, D, Role::AttnO, "transformer.h.{L}.attn.c_proj.weight", true},
    {Family::GPT2, D, Role::AttnOBias, "transformer.h.{L}.attn.c_proj.bias"},
    {Family::GPT2, D, Role::AttnKScale, "transformer.h.{L}.attn.gqa_k_scale"},
    {Family::GPT2, D, Role::AttnVScale, "transformer.h.{L}.attn.gqa_v_scale"},
    {Family::GPT2, D, Role::FfnNorm, "transformer.h.{L}.ln_2.weight"},
    {Family::GPT2, D, Role::FfnNormBias, "transformer.h.{L}.ln_2.bias"},
    {Family::GPT2, D, Role::FfnUp, "transformer.h.{L}.mlp.c_fc.weight", true},
    {Family::GPT2, D, Role::FfnUpBias, "transformer.h.{L}.mlp.c_fc.bias"},
    {Family::GPT2, D, Role::FfnDown, "transformer.h.{L}.mlp.c_proj.weight", true},
    {Family::GPT2, D, Role::FfnDownBias, "transformer.h.{L}.mlp.c_proj.bias"},
    // GPT-Neo.
    {Family::GPTNeo, D, Role::TokenEmbedding, "transformer.wte.weight"},
    {Family::GPTNeo, D, Role::PositionEmbedding, "transformer.wpe.weight"},
    {Family::GPTNeo, D, Role::FinalNorm, "transformer.ln_f.weight"},
    {Family::GPTNeo, D, Role::FinalNormBias, "transformer.ln_f.bias"},
    {Family::GPTNeo, D, Role::LmHead, "lm_head.weight"},
    {Family::GPTNeo, D, Role::AttnNorm, "transformer.h.{L}.ln_1.weight"},
    {Family::GPTNeo, D, Role::AttnNormBias, "transformer.h.{L}.ln_1.bias"},
    {Family::GPTNeo, D, Role::AttnQ, "transformer.h.{L}.attn.attention.q_proj.weight"},
    {Family::GPTNeo, D, Role::AttnK, "transformer.h.{L}.attn.attention.k_proj.weight"},
    {Family::GPTNeo, D, Role::AttnV, "transformer.h.{L}.attn.attention.v_proj.weight"},
    {Family::GPTNeo, D, Role::AttnO, "transformer.h.{L}.attn.attention.out_proj.weight"},
    {Family::GPTNeo, D, Role::AttnOBias, "transformer.h.{L}.attn.attention.out_proj.bias"},
    {Family::GPTNeo, D, Role::AttnKScale, "transformer.h.{L}.attn.attention.gqa_k_scale"},
    {Family::GPTNeo, D, Role::AttnVScale, "transformer.h.{L}.attn.attention.gqa_v_scale"},
    {Family::GPTNeo, D, Role::FfnNorm, "transformer.h.{L}.ln_2.weight"},
    {Family::GPTNeo, D, Role::FfnNormBias, "transformer.h.{L}.ln_2.bias"},
    {Family::GPTNeo, D, Role::FfnUp, "transformer.h.{L}.mlp.c_fc.weight"},
    {Family::GPTNeo, D, Role::FfnUpBias, "transformer.h.{L}.mlp.c_fc.bias"},
    {Family::GPTNeo, D, Role::FfnDown, "transformer.h.{L}.mlp.c_proj.weight"},
    {Family::GPTNeo, D, Role::FfnDownBias, "transformer.h.{L}.mlp.c_proj.bias"},
    // Llama.
    {Family::Llama, D, Role::TokenEmbedding, "model.embed_tokens.weight"},
    {Family::Llama, D, Role::FinalNorm, "model.norm.weight"},
    {Family::Llama, D, Role::LmHead, "lm_head.weight"},
    {Family::Llama, D, Role::AttnNorm, "model.layers.{L}.input_layernorm.weight"},
    {Family::Llama, D, Role::AttnQ, "model.layers.{L}.self_attn.q_proj.weight"},
    {Family::Llama, D, Role::AttnK, "model.layers.{L}.self_attn.k_proj.weight"},
    {Family::Llama, D, Role::AttnV, "model.layers.{L}.self_attn.v_proj.weight"},
    {Family::Llama, D, Role::AttnO, "model.layers.{L}.self_attn.o_proj.weight"},
    {Family::Llama, D, Role::AttnQBias, "model.layers.{L}.self_attn.q_proj.bias"},
    {Family::Llama, D, Role::AttnKBias, "model.layers.{L}.self_attn.k_proj.bias"},
    {Family::Llama, D, Role::AttnVBias, "model.layers.{L}.self_attn.v_proj.bias"},
    {Family::Llama, D, Role::AttnOBias, "model.layers.{L}.self_attn.o_proj.bias"},
    {Family::Llama, D, Role::AttnKScale, "model.layers.{L}.self_attn.gqa_k_scale"},
    {Family::Llama, D, Role::AttnVScale, "model.layers.{L}.self_attn.gqa_v_scale"},
    {Family::Llama, D, Role::FfnNorm, "model.layers.{L}.post_attention_layernorm.weight"},
    {Family::Llama, D, Role::FfnGate, "model.layers.{L}.mlp.gate_proj.weight"},
    {Family::Llama, D, Role::FfnUp, "model.layers.{L}.mlp.up_proj.weight"},
    {Family::Llama, D, Role::FfnDown, "model.layers.{L}.mlp.down_proj.weight"},
    {Family::Llama, D, Role::FfnUpBias, "model.layers.{L}.mlp.up_proj.bias"},
    {Family::Llama, D, Role::FfnGateBias, "model.layers.{L}.mlp.gate_proj.bias"},
    {Family::Llama, D, Role::FfnDownBias, "model.layers.{L}.mlp.down_proj.bias"},
    // GPT-NeoX (Pythia): q/k/v fused per head in query_key_value.
    {Family::GPTNeoX, D, Role::TokenEmbedding, "gpt_neox.embed_in.weight"},
    {Family::GPTNeoX, D, Role::FinalNorm, "gpt_neox.final_layer_norm.weight"},
    {Family::GPTNeoX, D, Role::FinalNormBias, "gpt_neox.final_layer_norm.bias"},
    {Family::GPTNeoX, D, Role::LmHead, "embed_out.weight"},
    {Family::GPTNeoX, D, Role::AttnNorm, "gpt_neox.layers.{L}.input_layernorm.weight"},
    {Family::GPTNeoX, D, Role::AttnNormBias, "gpt_neox.layers.{L}.input_layernorm.bias"},
    {Family::GPTNeoX, D, Role::AttnQ, "gpt_neox.layers.{L}.attention.query_key_value.weight", false, 0, true},
    {Family::GPTNeoX, D, Role::AttnK, "gpt_neox.layers.{L}.attention.query_key_value.weight", false, 1, true},
    {Family::GPTNeoX, D, Role::AttnV, "gpt_neox.layers.{L}.attention.query_key_value.weight", false, 2, true},
    {Family::GPTNeoX, D, Role::AttnQBias, "gpt_neox.layers.{L}.attention.query_key_value.bias", false, 0, true},
    {Family::GPTNeoX, D, Role::AttnKBias, "gpt_neox.layers.{L}.attention.query_key_value.bias", false, 1, true},
    {Family::GPTNeoX, D, Role::AttnVBias, "gpt_neox.layers.{L}.attention.query_key_value.bias", false, 2, true},
    {Family::GPTNeoX, D, Role::AttnO, "gpt_neox.layers.{L}.attention.dense.weight"},
    {Family::GPTNeoX, D, Role::AttnOBias, "gpt_neox.layers.{L}.attention.dense.bias"},
    {Family::GPTNeoX, D, Role::AttnKScale, "gpt_neox.layers.{L}.attention.gqa_k_scale"},
    {Family::GPTNeoX, D, Role::AttnVScale, "gpt_neox.layers.{L}.attention.gqa_v_scale"},
    {Family::GPTNeoX, D, Role::FfnNorm, "gpt_neox.layers.{L}.post_attention_layernorm.weight"},
    {Family::GPTNeoX, D, Role::FfnNormBias, "gpt_neox.layers.{L}.post_attention_layernorm.bias"},
    {Family::GPTNeoX, D, Role::FfnUp, "gpt_neox.layers.{L}.mlp.dense_h_to_4h.weight"},
    {Family::GPTNeoX, D, Role::FfnUpBias, "gpt_neox.layers.{L}.mlp.dense_h_to_4h.bias"},
    {Family::GPTNeoX, D, Role::FfnDown, "gpt_neox.layers.{L}.mlp.dense_4h_to_h.weight"},
    {Family::GPTNeoX, D, Role::FfnDownBias, "gpt_neox.layers.{L}.mlp.dense_4h_to_h.bias"},
    // OPT: per-layer norms are self_attn_layer_norm and final_layer_norm.
    {Family::OPT, D, Role::TokenEmbedding, "model.decoder.embed_tokens.weight"},
    {Family::OPT, D, Role::PositionEmbedding, "model.decoder.embed_positions.weight"},
    {Family::OPT, D, Role::EmbedProjIn, "model.decoder.project_in.weight"},
    {Family::OPT, D, Role::EmbedProjOut, "model.decoder.project_out.weight"},
    {Family::OPT, D, Role::FinalNorm, "model.decoder.final_layer_norm.weight"},
    {Family::OPT, D, Role::FinalNormBias, "model.decoder.final_layer_norm.bias"},
    {Family::OPT, D, Role::LmHead, "lm_head.weight"},
    {Family::OPT, D, Role::AttnNorm, "model.decoder.layers.{L}.self_attn_layer_norm.weight"},
    {Family::OPT, D, Role::AttnNormBias, "model.decoder.layers.{L}.self_attn_layer_norm.bias"},
    {Family::OPT, D, Role::AttnQ, "model.decoder.layers.{L}.self_attn.q_proj.weight"},
    {Family::OPT, D, Role::AttnK, "model.decoder.layers.{L}.self_attn.k_proj.weight"},
    {Family::OPT, D, Role::AttnV, "model.decoder.layers.{L}.self_attn.v_proj.weight"},
    {Family::OPT, D, Role::AttnO, "model.decoder.layers.{L}.self_attn.out_proj.weight"},
    {Family::OPT, D, Role::AttnQBias, "model.decoder.layers.{L}.self_attn.q_proj.bias"},
    {Family::OPT, D, Role::AttnKBias, "model.decoder.layers.{L}.self_attn.k_proj.bias"},
    {Family::OPT, D, Role::AttnVBias, "model.decoder.layers.{L}.self_attn.v_proj.bias"},
    {Family::OPT, D, Role::AttnOBias, "model.decoder.layers.{L}.self_attn.out_proj.bias"},
    {Family::OPT, D, Role::AttnKScale, "model.decoder.layers.{L}.self_attn.gqa_k_scale"},
    {Family::OPT, D, Role::AttnVScale, "model.decoder.layers.{L}.self_attn.gqa_v_scale"},
    {Family::OPT, D, Role::FfnNorm, "model.decoder.layers.{L}.final_layer_norm.weight"},
    {Family::OPT, D, Role::FfnNormBias, "model.decoder.layers.{L}.final_layer_norm.bias"},
    {Family::OPT, D, Role::FfnUp, "model.decoder.layers.{L}.fc1.weight"},
    {Family::OPT, D, Role::FfnUpBias, "model.decoder.layers.{L}.fc1.bias"},
    {Family::OPT, D, Role::FfnDown, "model.decoder.layers.{L}.fc2.weight"},
    {Family::OPT, D, Role::FfnDownBias, "model.decoder.layers.{L}.fc2.bias"},
    // Qwen2: Llama's names, q/k/v biases only.
    {Family::Qwen2, D, Role::TokenEmbedding, "model.embed_tokens.weight"},
    {Family::Qwen2, D, Role::FinalNorm, "model.norm.weight"},
    {Family::Qwen2, D, Role::LmHead, "lm_head.weight"},
    {Family::Qwen2, D, Role::AttnNorm, "model.layers.{L}.input_layernorm.weight"},
    {Family::Qwen2, D, Role::AttnQ, "model.layers.{L}.self_attn.q_proj.weight"},
    {Family::Qwen2, D, Role::AttnK, "model.layers.{L}.self_attn.k_proj.weight"},
    {Family::Qwen2, D, Role::AttnV, "model.layers.{L}.self_attn.v_proj.weight"},
    {Family::Qwen2, D, Role::AttnO, "model.layers.{L}.self_attn.o_proj.weight"},
    {Family::Qwen2, D, Role::AttnQBias, "model.layers.{L}.self_attn.q_proj.bias"},
    {Family::Qwen2, D, Role::AttnKBias, "model.layers.{L}.self_attn.k_proj.bias"},
    {Family::Qwen2, D, Role::AttnVBias, "model.layers.{L}.self_attn.v_proj.bias"},
    {Family::Qwen2, D, Role::AttnKScale, "model.layers.{L}.self_attn.gqa_k_scale"},
    {Family::Qwen2, D, Role::AttnVScale, "model.layers.{L}.self_attn.gqa_v_scale"},
    {Family::Qwen2, D, Role::FfnNorm, "model.layers.{L}.post_attention_layernorm.weight"},
    {Family::Qwen2, D, Role::FfnGate, "model.layers.{L}.mlp.gate_proj.weight"},
    {Family::Qwen2, D, Role::FfnUp, "model.layers.{L}.mlp.up_proj.weight"},
    {Family::Qwen2, D, Role::FfnDown, "model.layers.{L}.mlp.down_proj.weight"},
    // T5: encoder blocks are [self-attn, ffn], decoder blocks [self-attn, cross-attn, ffn].
    {Family::T5, E, Role::TokenEmbedding, "shared.weight"},
    {Family::T5, D, Role::TokenEmbedding, "shared.weight"},
    {Family::T5, D, Role::LmHead, "lm_head.weight"},
    {Family::T5, E, Role::FinalNorm, "encoder.final_layer_norm.weight"},
    {Family::T5, D, Role::FinalNorm, "decoder.final_layer_norm.weight"},
    {Family::T5, E, Role::AttnRelativeBias, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
    {Family::T5, D, Role::AttnRelativeBias, "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
    {Family::T5, E, Role::AttnNorm, "encoder.block.{L}.layer.0.layer_norm.weight"},
    {Family::T5, D, Role::AttnNorm, "decoder.block.{L}.layer.0.layer_norm.weight"},
    {Family::T5, E, Role::AttnQ, "encoder.block.{L}.layer.0.SelfAttention.q.weight"},
    {Family::T5, E, Role::AttnK, "encoder.block.{L}.layer.0.SelfAttention.k.weight"},
    {Family::T5, E, Role::AttnV, "encoder.block.{L}.layer.0.SelfAttention.v.weight"},
    {Family::T5, E, Role::AttnO, "encoder.block.{L}.layer.0.SelfAttention.o.weight"},
    {Family::T5, D, Role::AttnQ, "decoder.block.{L}.layer.0.SelfAttention.q.weight"},
    {Family::T5, D, Role::AttnK, "decoder.block.{L}.layer.0.SelfAttention.k.weight"},
    {Family::T5, D, Role::AttnV, "decoder.block.{L}.layer.0.SelfAttention.v.weight"},
    {Family::T5, D, Role::AttnO, "decoder.block.{L}.layer.0.SelfAttention.o.weight"},
    {Family::T5, D, Role::CrossNorm, "decoder.block.{L}.layer.1.layer_norm.weight"},
    {Family::T5, D, Role::CrossQ, "decoder.block.{L}.layer.1.EncDecAttention.q.weight"},
    {Family::T5, D, Role::CrossK, "decoder.block.{L}.layer.1.EncDecAttention.k.weight"},
    {Family::T5, D, Role::CrossV, "decoder.block.{L}.layer.1.EncDecAttention.v.weight"},
    {Family::T5, D, Role::CrossO, "decoder.block.{L}.layer.1.EncDecAttention.o.weight"},
    {Family::T5, E, Role::AttnKScale, "encoder.block.{L}.layer.0.SelfAttention.gqa_k_scale"},
    {Family::T5, E, Role::AttnVScale, "encoder.block.{L}.layer.0.SelfAttention.gqa_v_scale"},
    {Family::T5, D, Role::AttnKScale, "decoder.block.{L}.layer.0.SelfAttention.gqa_k_scale"},
    {Family::T5, D, Role::AttnVScale, "decoder.block.{L}.layer.0.SelfAttention.gqa_v_scale"},
    {Family::T5, D, Role::CrossKScale, "decoder.block.{L}.layer.1.EncDecAttention.gqa_k_scale"},
    {Family::T5, D, Role::CrossVScale, "decoder.block.{L}.layer.1.EncDecAttention.gqa_v_scale"},
    {Family::T5, E, Role::FfnNorm, "encoder.block.{L}.layer.1.layer_norm.weight"},
    {Family::T5, D, Role::FfnNorm, "decoder.block.{L}.layer.2.layer_norm.weight"},
    {Family::T5, E, Role::FfnUp, "encoder.block.{L}.layer.1.DenseReluDense.wi.weight"},
    {Family::T5, D, Role::FfnUp, "decoder.block.{L}.layer.2.DenseReluDense.wi.weight"},
    {Family::T5, E, Role::FfnDown, "encoder.block.{L}.layer.1.DenseReluDense.wo.weight"},
    {Family::T5, D, Role::FfnDown, "decoder.block.{L}.layer.2.DenseReluDense.wo.weight"},
};

std::string fill_layer(const char* pattern, int64_t layer) {
  std::string s = pattern;
  auto pos = s.find("{L}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(layer));
  return s;
}

// The prefixes of the *ForCausalLM classes that base-model saves (GPT2Model, LlamaModel,
// GPTNeoXModel, OPTModel) drop.
const char* const kBasePrefixes[] = {"transformer.", "model.", "gpt_neox."};

// Tensor names as a checkpoint spells them, with or without the base-model prefix.
std::optional<std::string> resolve(const Checkpoint& ckpt, const std::string& name) {
  if (ckpt.has(name)) return name;
  for (const char* prefix : kBasePrefixes)
    if (name.rfind(prefix, 0) == 0 && ckpt.has(name.substr(std::string(prefix).size())))
      return name.substr(std::string(prefix).size());
  return std::nullopt;
}

}  // namespace

const char* role_name(Role r) {
  // In Role's order, grouped as the enum is.
  // clang-format off
  static const char* names[] = {
      "token_embedding", "position_embedding", "lm_head", "final_norm", "final_norm_bias",
      "attn_norm", "attn_norm_bias", "attn_q", "attn_k", "attn_v", "attn_o", "attn_q_bias", "attn_k_bias",
      "attn_v_bias", "attn_o_bias", "attn_relative_bias",
      "cross_norm", "cross_q", "cross_k", "cross_v", "cross_o",
      "attn_k_scale", "attn_v_scale", "cross_k_scale", "cross_v_scale",
      "ffn_norm", "ffn_norm_bias", "ffn_up", "ffn_up_bias", "ffn_gate", "ffn_down", "ffn_down_bias", "ffn_gate_bias",
      "embed_proj_in", "embed_proj_out",
      "latent_q", "latent_q_bias", "latent_kv_a", "latent_kv_a_bias", "latent_kv_b", "latent_kv_b_bias",
      "cross_latent_q", "cross_latent_kv_a", "cross_latent_kv_b"};
  // clang-format on
  return names[int(r)];
}

namespace {

// A latent block's tensor: its name after the module's prefix (the output projection's name less
// its last two parts, e.g. "model.layers.{L}.self_attn"), as DeepSeek-V2/V3 name them; nullopt
// for any other role.
struct LatentName {
  Role role, beside;
  const char* suffix;
};
const LatentName kLatentNames[] = {
    {Role::LatentQ, Role::AttnO, "q_proj.weight"},
    {Role::LatentQBias, Role::AttnO, "q_proj.bias"},
    {Role::LatentKvA, Role::AttnO, "kv_a_proj_with_mqa.weight"},
    {Role::LatentKvABias, Role::AttnO, "kv_a_proj_with_mqa.bias"},
    {Role::LatentKvB, Role::AttnO, "kv_b_proj.weight"},
    {Role::LatentKvBBias, Role::AttnO, "kv_b_proj.bias"},
    {Role::CrossLatentQ, Role::CrossO, "q_proj.weight"},
    {Role::CrossLatentKvA, Role::CrossO, "kv_a_proj_with_mqa.weight"},
    {Role::CrossLatentKvB, Role::CrossO, "kv_b_proj.weight"},
};

}  // namespace

std::optional<TensorLocation> locate(const ModelConfig& cfg, Stack s, Role r, int64_t layer) {
  for (const LatentName& n : kLatentNames) {
    if (n.role != r) continue;
    auto o = locate(cfg, s, n.beside, layer);
    if (!o) return std::nullopt;
    const size_t last = o->name.rfind('.'),
                 prefix_end = last == std::string::npos ? last : o->name.rfind('.', last - 1);
    if (prefix_end == std::string::npos) return std::nullopt;
    return TensorLocation{o->name.substr(0, prefix_end + 1) + n.suffix};
  }
  // T5 v1.1 gated FFN: wi_0 is the activated (gate) branch, wi_1 the linear (up) branch.
  if (cfg.family == Family::T5 && cfg.gated_ffn && (r == Role::FfnUp || r == Role::FfnGate)) {
    std::string base = fill_layer(
        s == Stack::Encoder ? "encoder.block.{L}.layer.1.DenseReluDense." : "decoder.block.{L}.layer.2.DenseReluDense.",
        layer);
    return TensorLocation{base + (r == Role::FfnGate ? "wi_0.weight" : "wi_1.weight")};
  }
  for (const Entry& e : kTable)
    if (e.family == cfg.family && e.stack == s && e.role == r)
      return TensorLocation{fill_layer(e.pattern, layer), e.conv1d, e.fused_part, e.fused_per_head};
  return std::nullopt;
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::optional<std::string> role_tensor_name(const Checkpoint& ckpt, Stack s, Role r, int64_t layer) {
  auto loc = locate(ckpt.config(), s, r, layer);
  return loc ? resolve(ckpt, loc->name) : std::nullopt;
}

std::string new_role_tensor_name(const Checkpoint& in, Stack s, Role r, int64_t layer) {
  auto loc = locate(in.config(), s, r, layer);
  if (!loc)
    throw InputError(in.dir(), role_name(r),
                     std::string("no such tensor in a ") + family_name(in.config().family) + " model");
  // A base-model save (no "transformer."/"model." prefix on any tensor) drops it here too.
  for (const std::string prefix : kBasePrefixes) {
    if (loc->name.rfind(prefix, 0) != 0) continue;
    const auto names = in.names();
    const bool any =
        std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.rfind(prefix, 0) == 0; });
    if (!any) return loc->name.substr(prefix.size());
  }
  return loc->name;
}

bool has_role(const Checkpoint& ckpt, Stack s, Role r, int64_t layer) {
  return role_tensor_name(ckpt, s, r, layer).has_value();
}

std::vector<FusedRun> fused_qkv_runs(const AttentionLayout& l, int64_t stored_kv_heads, bool per_head) {
  const int64_t n_q = l.n_q, dqk = l.head_dim_qk, dv = l.head_dim_v;
  if (per_head && stored_kv_heads == n_q) {
    std::vector<FusedRun> runs;
    for (int64_t h = 0; h < n_q; ++h) {
      runs.push_back({0, h * dqk, dqk});
      runs.push_back({1, h * dqk, dqk});
      runs.push_back({2, h * dv, dv});
    }
    return runs;
  }
  return {{0, 0, n_q * dqk}, {1, 0, stored_kv_heads * dqk}, {2, 0, stored_kv_heads * dv}};
}

AttentionRoles attention_roles(AttentionModule module) {
  // In AttentionRoles' order: q, k, v, o; their biases; the WGQA scales; the latent block's roles.
  if (module == AttentionModule::DecoderCross)  // T5's cross-attention has no biases
    return {Stack::Decoder,
            Role::CrossQ,
            Role::CrossK,
            Role::CrossV,
            Role::CrossO,
            {},
            {},
            {},
            {},
            Role::CrossKScale,
            Role::CrossVScale,
            Role::CrossLatentQ,
            Role::CrossLatentKvA,
            Role::CrossLatentKvB,
            {},
            {},
            {}};
  return {module == AttentionModule::EncoderSelf ? Stack::Encoder : Stack::Decoder,
          Role::AttnQ,
          Role::AttnK,
          Role::AttnV,
          Role::AttnO,
          Role::AttnQBias,
          Role::AttnKBias,
          Role::AttnVBias,
          Role::AttnOBias,
          Role::AttnKScale,
          Role::AttnVScale,
          Role::LatentQ,
          Role::LatentKvA,
          Role::LatentKvB,
          Role::LatentQBias,
          Role::LatentKvABias,
          Role::LatentKvBBias};
}

HostTensor load_role(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, const std::vector<int64_t>& expected) {
  const ModelConfig& cfg = ckpt.config();
  auto loc = locate(cfg, s, r, layer);
  if (!loc)
    throw InputError(ckpt.dir(), role_name(r),
                     std::string("no such tensor in a ") + family_name(cfg.family) + " model");
  auto name = resolve(ckpt, loc->name);
  if (!name) throw InputError(ckpt.dir(), loc->name, "tensor missing from the checkpoint");
  const TensorView& t = ckpt.tensor(*name);
  const std::string where = ckpt.file_of(*name);
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F64)
    throw InputError(where, *name,
                     std::string("dtype ") + dtype_name(t.dtype) + " where floating-point weights were expected");

  // Stored shape as [rows, cols] of the stored matrix (vectors have cols = 1).
  std::vector<int64_t> stored = t.shape;
  if (stored.empty() || stored.size() > 2)
    throw InputError(where, *name, "expected a vector or matrix, got " + std::to_string(stored.size()) + " dims");
  const bool matrix = stored.size() == 2;
  int64_t rows = stored[0], cols = matrix ? stored[1] : 1;
  std::vector<float> all(size_t(rows * cols));
  to_float32(t.dtype, t.data, rows * cols, all.data());
  release_pages(t);  // read once per role: keep resident memory to what is being converted
  // A NaN/Inf weight (a diverged run, a bad cast) would surface much later as a NaN loss or
  // garbage text; name the tensor and the element here instead.
  for (size_t i = 0; i < all.size(); ++i)
    if (!std::isfinite(all[i]))
      throw InputError(where, *name,
                       std::string(std::isnan(all[i]) ? "NaN" : "Inf") + " at element " + std::to_string(i) +
                           (matrix ? " (row " + std::to_string(int64_t(i) / cols) + ", column " +
                                         std::to_string(int64_t(i) % cols) + ")"
                                   : "") +
                           "; the weights are corrupt");

  // Linear layout: [out, in]. Conv1D stores [in, out].
  int64_t out_dim = rows, in_dim = cols;
  if (loc->conv1d && matrix) std::swap(out_dim, in_dim);
  auto at = [&](int64_t o, int64_t i) -> float {
    return loc->conv1d && matrix ? all[size_t(i * cols + o)] : all[size_t(o * cols + i)];
  };

  // Fused q/k/v: gather this part's rows by the block's layout (q = n_q*dqk, k = n_kv*dqk, v = n_kv*dv).
  std::vector<FusedRun> runs = {{0, 0, out_dim}};  // the stored rows this role reads, in order
  int64_t row_count = out_dim;
  if (loc->fused_part >= 0) {
    const AttentionLayout& l = cfg.layout(AttentionModule::DecoderSelf, layer);
    const int64_t kv = cfg.stored_kv_heads(AttentionModule::DecoderSelf, layer);
    const std::vector<FusedRun> all_runs = fused_qkv_runs(l, kv, loc->fused_per_head);
    int64_t total = 0, at_row = 0;
    for (const FusedRun& r : all_runs) total += r.rows;
    if (total != out_dim)
      throw InputError(where, *name,
                       "fused q/k/v has " + std::to_string(out_dim) + " outputs, the config's attention layout needs " +
                           std::to_string(total));
    runs.clear();
    row_count = 0;
    for (const FusedRun& r : all_runs) {
      if (r.part == loc->fused_part) {
        runs.push_back({r.part, at_row, r.rows});
        row_count += r.rows;
      }
      at_row += r.rows;
    }
  }
  HostTensor h;
  h.shape = matrix ? std::vector<int64_t>{row_count, in_dim} : std::vector<int64_t>{row_count};
  if (h.shape != expected) {
    auto fmt = [](const std::vector<int64_t>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    };
    throw InputError(where, *name,
                     "shape " + fmt(h.shape) + " disagrees with config.json, which implies " + fmt(expected));
  }
  if (!(loc->conv1d && matrix) && row_count == out_dim) {  // stored as served: no second copy
    h.data = std::move(all);
    return h;
  }
  h.data.resize(size_t(row_count * in_dim));
  int64_t o = 0;
  for (const FusedRun& r : runs)
    for (int64_t row = r.first_row; row < r.first_row + r.rows; ++row, ++o)
      for (int64_t i = 0; i < in_dim; ++i) h.data[size_t(o * in_dim + i)] = at(row, i);
  return h;
}

}  // namespace gqa
