// The tensors of a latent block in a checkpoint, as core/model/latent_attention reads them: the
// query, the down-projection to [latent | rotary key] and the per-head key/value up-projection
// under DeepSeek's names beside the block's output projection, which keeps its own name (and
// GPT-2's Conv1D layout).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "convert/latent.h"
#include "core/checkpoint.h"

namespace gqa {

// The block's tensors with `layout` (latent_layout's), in `dtype`, named after the input
// checkpoint `in`; biases where the source block has them (q bias: the query's; any key or value
// bias: the down- and up-projections'; the output's). `make` is called when the writer needs the
// bytes, so blocks are folded one at a time.
std::vector<TensorToWrite> latent_tensors(const Checkpoint& in, AttentionModule module, int64_t layer,
                                          const AttentionLayout& layout, DType dtype,
                                          std::function<const LatentAttentionWeights&()> make);

}  // namespace gqa
