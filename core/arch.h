// Hugging Face tensor names per family, in one table (as llama.cpp's arch table), and the cuts that
// turn them into plain per-role matrices: GPT-2's Conv1D weights are stored [in, out] and its
// q/k/v are fused in c_attn; everything we hand out is torch.nn.Linear layout [out, in].
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"

namespace gqa {

enum class Stack { Decoder, Encoder };

enum class Role {
  TokenEmbedding,
  PositionEmbedding,
  LmHead,
  FinalNorm,
  FinalNormBias,
  AttnNorm,
  AttnNormBias,
  AttnQ,
  AttnK,
  AttnV,
  AttnO,
  AttnQBias,
  AttnKBias,
  AttnVBias,
  AttnOBias,
  AttnRelativeBias,  // T5: [buckets, heads] in the first block of each stack
  CrossNorm,
  CrossQ,
  CrossK,
  CrossV,
  CrossO,
  // WGQA: one learnable scalar per stored K (V) head, [n_q]; only in weighted folders (gqa_weighted).
  AttnKScale,
  AttnVScale,
  CrossKScale,
  CrossVScale,
  FfnNorm,
  FfnNormBias,
  FfnUp,
  FfnUpBias,
  FfnGate,
  FfnDown,
  FfnDownBias,
  FfnGateBias,
  // OPT with word_embed_proj_dim != hidden_size: embeddings -> model width, and back before lm_head.
  EmbedProjIn,
  EmbedProjOut,
  // Latent attention blocks (gqa_latent, MLA): the query, the down-projection to [latent | rotary
  // key] and the per-head key/value up-projection, with biases where the source block had them.
  // Named after DeepSeek-V2/V3 beside the block's output projection (see locate); the output
  // projection keeps its AttnO/CrossO role.
  LatentQ,
  LatentQBias,
  LatentKvA,
  LatentKvABias,
  LatentKvB,
  LatentKvBBias,
  CrossLatentQ,
  CrossLatentKvA,
  CrossLatentKvB,
};
const char* role_name(Role r);

// Where a role lives in a checkpoint.
struct TensorLocation {
  std::string name;             // HF tensor name with the layer filled in
  bool conv1d = false;          // stored transposed ([in, out]) as GPT-2's Conv1D
  int fused_part = -1;          // q/k/v slot (0, 1, 2) inside a fused qkv tensor, -1 when not fused
  bool fused_per_head = false;  // the fused tensor interleaves q/k/v per head (GPT-NeoX)
};

// The rows of a fused q/k/v tensor in storage order: each run is rows [first_row, first_row + rows)
// of one part (0 q, 1 k, 2 v; a weight's output rows or a bias's entries). The one place that
// knows how fused tensors are laid out, for every reader and writer of them.
struct FusedRun {
  int part;
  int64_t first_row, rows;
};
// GPT-2 stores the q, k and v blocks one after another. GPT-NeoX interleaves them per head,
// [q_h k_h v_h] for every head h, which only pairs up while a block stores one K/V head per query
// head (MHA, and weighted folders); grouped GPT-NeoX folders store the blocks as GPT-2 does.
std::vector<FusedRun> fused_qkv_runs(const AttentionLayout& layout, int64_t stored_kv_heads, bool per_head);

// The location of a role, or nullopt when the family has no such tensor (e.g. GPT-Neo has no
// q bias). `layer` is ignored for global roles.
std::optional<TensorLocation> locate(const ModelConfig& cfg, Stack s, Role r, int64_t layer = 0);

// Plain float32 tensor on the host, row-major.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
};

class Checkpoint;

// Reads a role as float32 in Linear layout, cutting fused q/k/v by the block's layout (so grouped
// GPT-2 checkpoints with fewer KV columns load too) and checking the shape against `expected`.
HostTensor load_role(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, const std::vector<int64_t>& expected);
bool has_role(const Checkpoint& ckpt, Stack s, Role r, int64_t layer);
// The name a role has in this checkpoint (base-model saves drop "transformer."/"model."), or
// nullopt when absent.
std::optional<std::string> role_tensor_name(const Checkpoint& ckpt, Stack s, Role r, int64_t layer);

// The name a role gets when a writer adds it to a folder made from `in` (same prefix style as the
// checkpoint's other tensors), e.g. WGQA scales that the source does not have.
std::string new_role_tensor_name(const Checkpoint& in, Stack s, Role r, int64_t layer);

// The attention roles of a module: q, k, v, o weights then their biases (T5 cross: weights only),
// and the roles of the same module as a latent block.
struct AttentionRoles {
  Stack stack;
  Role q, k, v, o;
  std::optional<Role> q_bias, k_bias, v_bias, o_bias;
  Role k_scale, v_scale;
  Role latent_q, kv_a, kv_b;
  std::optional<Role> latent_q_bias, kv_a_bias, kv_b_bias;
};
AttentionRoles attention_roles(AttentionModule module);

}  // namespace gqa
