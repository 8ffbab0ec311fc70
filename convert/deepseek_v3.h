// Hugging Face output of latent attention: a latent Llama folder (gqa convert --target mla, before
// or after uptraining) written as a `deepseek_v3` folder, which transformers loads without
// trust_remote_code: q_lora_rank null (one query projection), a dense MLP in every layer
// (first_k_dense_replace = layers), kv_lora_rank = the latent, qk_rope_head_dim = the rotary key.
//
// What DeepSeek-V3's attention adds to the fold (transformers' modeling_deepseek_v3):
//  - its rotary key turns slot j at base^(-2j/D), rotate-half layout (rope_interleave false): the
//    fold's slots match when D = one head's rotary dims and slot j keeps pair j (the deepseek
//    layout `--rope-dims` defaults to);
//  - softmax scale (nope + D)^-0.5 where the source used head_dim^-0.5: folded into the query;
//  - an RMSNorm on the latent (kv_a_layernorm, eps 1e-6) before the up-projection, which a linear
//    fold cannot express. Two ways to write it:
//      anchor (default): one more latent dim whose down-projection is 0 and whose bias is a
//        constant A (attention_bias: true). Then rms([c, A]) = A / sqrt(R + 1) up to a relative
//        |c|^2 / 2A^2, the norm is linear in c, and its weight undoes the division. A is 10^4 times
//        a bound on |c| from the weights (|x| <= sqrt(d) max|input norm weight|), so the error is
//        below 1e-8 relative: the folder computes gqa's function, for one more cached dim.
//      plain: kv_lora_rank = R exactly and the norm weight = the latent's RMS over calibration
//        text; each token's latent is then rescaled by (its RMS / that RMS), which is the cost
//        measured in examples/mla_vs_gqa.
#pragma once
#include <ostream>
#include <string>

#include "convert/calibration_store.h"

namespace gqa {

enum class LatentNorm { Anchor, Plain };

struct DeepseekExportOptions {
  LatentNorm norm = LatentNorm::Anchor;
  // Plain: statistics of each layer's attention input on calibration text (the latent folder's
  // own model, collect_calibration).
  const CalibrationStore* calibration = nullptr;
  bool force = false;
};

struct DeepseekExportSummary {
  int64_t layers = 0, kv_lora_rank = 0, rope_dims = 0;
  int64_t kv_bytes_per_token = 0;  // of the deepseek_v3 folder, fp32-sized, all layers
};

DeepseekExportSummary export_deepseek_v3(const std::string& in_dir, const std::string& out_dir,
                                         const DeepseekExportOptions& options, std::ostream* progress = nullptr);

}  // namespace gqa
