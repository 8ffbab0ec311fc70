// Fresh models for `gqa train`: a small shape description (any family, grouped or not) becomes a
// Hugging Face config.json and a randomly initialised checkpoint folder, which the runtime then
// loads like any other. Torch-free: the same role table (core/arch.h) names every tensor, and the
// layouts come from parsing the config we write, so the folder is exactly what the runtime expects.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/model_shape.h"

namespace gqa {

// Parses the small JSON of `gqa train --config`. Keys: "family" (a model_type of core/families/:
// gpt2, gpt_neo, llama, t5, gpt_neox, opt, qwen2) and "vocab_size" are required; "layers",
// "encoder_layers" (T5), "d_model", "heads", "head_dim", "kv_heads", "group_map", "qk_head_dim",
// "v_head_dim", "ffn_dim", "max_positions" (not T5), "activation", "window_size" (GPT-Neo),
// "bos_token_id", "eos_token_id", "pad_token_id" are optional. An unknown key, a wrong type or an
// impossible shape throws InputError(file, key, ...).
ModelShape parse_model_shape(const nlohmann::json& j, const std::string& file);

// The checks parse_model_shape makes, for shapes built in code; errors name the JSON keys.
void validate_model_shape(const ModelShape& shape, const std::string& source);

// The FFN width used when the shape leaves it 0: 4 * d_model, or for gated FFNs (Llama, T5
// "gated-*") 8/3 * d_model rounded up to a multiple of 64 (about the same parameter count; Llama's own
// multiple of 256 is too coarse for small models).
int64_t default_ffn_dim(const ModelShape& shape);

// The config.json of a fresh model of that shape, as transformers 5 writes it for the family,
// plus the gqa_* layout fields when grouped or KQV. Family choices: GPT-2/GPT-Neo "gelu_new";
// Llama SwiGLU ("silu"), RMSNorm eps 1e-6, rope_theta 10000, tied embeddings (small models spend
// most of their parameters there); T5 v1.0 style ("relu", tied head with the d_model^-0.5
// output scale, 32 relative buckets up to distance 128, decoder_start_token_id = pad = 0 unless
// given), grouping its decoder self- and cross-attention (the KV caches); GPT-NeoX Pythia's
// (rotary_pct 0.25, parallel residual, GELU), OPT's pre-norm (ReLU, offset-2 positions), Qwen2
// as Llama with q/k/v biases, all tied (each family's fresh_config). Token ids not given
// are written as null so no family default (e.g. GPT-2's 50256) points outside the vocabulary.
nlohmann::json make_config(const ModelShape& shape);

// Parameters of a model of that shape: the sum of the sizes of the tensors
// write_initial_checkpoint writes (tied weights once), which is what transformers' num_parameters()
// reports for the shapes it can build.
int64_t parameter_count(const ModelShape& shape);
// The same from a config.json alone (any family and layout the runtime reads).
int64_t parameter_count(const ModelConfig& config);

// The FFN width whose model has the parameter count closest to `target` (the seed poster's way
// of equalising a GQA model with its MHA reference). At least 1.
int64_t ffn_dim_matching(ModelShape shape, int64_t target);

// Writes config.json + model.safetensors (float32, seeded) of a fresh model to `out_dir`
// atomically (see CheckpointWriter), initialised as transformers' _init_weights does for the
// family. The same seed gives byte-identical files on every platform: each tensor draws from its
// own std::mt19937_64 (seeded from the seed and the tensor's name) through Box-Muller.
// config.json also records {"gqa_init": {"seed": seed}}.
void write_initial_checkpoint(const ModelShape& shape, const std::string& out_dir, uint64_t seed, bool overwrite);

}  // namespace gqa
