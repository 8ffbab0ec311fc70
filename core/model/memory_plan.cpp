#include "core/model/memory_plan.h"

#include <c10/core/CachingDeviceAllocator.h>

#include <algorithm>

#include "core/error.h"
#include "core/family.h"
#include "core/format.h"
#include "core/memory.h"

namespace gqa {
namespace {

struct Sizes {
  int64_t params = 0, largest = 0;  // elements
  int64_t shell = 0;                // embeddings, head, norms outside the blocks
  int64_t block = 0;                // the largest block, roughly
};

Sizes sizes_of(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  Sizes s;
  for (const std::string& n : ckpt.names()) {
    const int64_t numel = ckpt.tensor(n).numel();
    s.params += numel;
    s.largest = std::max(s.largest, numel);
  }
  const bool learned_positions = c.spec().positions == Positions::Learned;
  s.shell = c.vocab_size * c.embedding_width() * (c.tie_word_embeddings ? 1 : 2) +
            (learned_positions ? (c.max_positions + c.position_offset) * c.d_model : 0);
  s.shell = std::min(s.shell, s.params);
  const int64_t blocks = std::max<int64_t>(1, c.n_layers + c.n_encoder_layers);
  s.block = (s.params - s.shell) / blocks;
  // T5's decoder blocks carry cross-attention too: half again an encoder block, at most.
  if (c.is_encoder_decoder()) s.block += s.block / 2;
  return s;
}

// Activations of one forward over `rows` positions in `sequences` sequences: the residual stream
// and its normed copy, q/k/v/attention output, the FFN's hidden layer(s) and the attention scores,
// at the runtime dtype, with float32 norms and softmax.
int64_t activation_bytes(const ModelConfig& c, int64_t sequences, int64_t tokens, int64_t elem) {
  const int64_t rows = sequences * tokens;
  const int64_t per_row = 8 * c.d_model + 3 * c.ffn_dim;
  const int64_t scores = sequences * c.n_heads * tokens * tokens * 4 * 2;
  return rows * per_row * std::max<int64_t>(elem, 4) + scores;
}

// What every need shares: the dtype, and loading = the float32 staging of the largest tensor plus
// its runtime copy. `resident` elements stay loaded.
MemoryNeed need_of(const Sizes& s, at::ScalarType dtype, int64_t resident) {
  const int64_t elem = int64_t(at::elementSize(dtype));
  MemoryNeed n;
  n.dtype = dtype;
  n.weights = resident * elem;
  n.loading = s.largest * (4 + elem);
  return n;
}

// The logits of one loss chunk (2^24 floats) and their log-softmax.
constexpr int64_t kLogitsChunkBytes = (int64_t(1) << 24) * 4 * 2;

}  // namespace

std::string MemoryNeed::describe() const {
  return format_bytes(double(total())) + " (weights " + format_bytes(double(weights)) + " in " +
         runtime_dtype_name(dtype) + ", loading " + format_bytes(double(loading)) + ", working " +
         format_bytes(double(working)) + ")";
}

MemoryNeed whole_model_need(const Checkpoint& ckpt, at::ScalarType dtype, int64_t sequences, int64_t tokens,
                            bool kv_cache) {
  const ModelConfig& c = ckpt.config();
  const Sizes s = sizes_of(ckpt);
  const int64_t elem = int64_t(at::elementSize(dtype));
  MemoryNeed n = need_of(s, dtype, s.params);
  // Forward of the batch, the KV cache it fills and the logits of a loss chunk.
  n.working = activation_bytes(c, sequences, tokens, elem) +
              (kv_cache ? c.kv_bytes_per_token(elem) * sequences * tokens : 0) + sequences * c.vocab_size * 4 +
              kLogitsChunkBytes;
  return n;
}

MemoryNeed one_block_need(const Checkpoint& ckpt, at::ScalarType dtype, int64_t sequences, int64_t tokens,
                          int64_t statistics_blocks) {
  const ModelConfig& c = ckpt.config();
  const Sizes s = sizes_of(ckpt);
  const int64_t elem = int64_t(at::elementSize(dtype));
  MemoryNeed n = need_of(s, dtype, s.shell + s.block);
  // Hidden states of every sequence (T5: the encoder output too), one micro-batch's forward
  // (8 sequences) and the float64 Gram sums with their float32 copy.
  const int64_t hidden = sequences * tokens * c.d_model * elem * (c.is_encoder_decoder() ? 2 : 1);
  n.working = hidden + activation_bytes(c, std::min<int64_t>(sequences, 8), tokens, elem) +
              statistics_blocks * c.d_model * c.d_model * (8 + 4) + kLogitsChunkBytes;
  return n;
}

MemoryAvailable memory_available(const at::Device& device) {
  if (device.is_cuda()) {
    const auto [free, total] =
        c10::getDeviceAllocator(device.type())->getMemoryInfo(device.has_index() ? device.index() : 0);
    (void)total;
    return {int64_t(free), "free memory of " + device.str()};
  }
  const HostMemory h = host_memory_available();
  return {h.available, h.limited_by};
}

void require_memory(const std::string& where, const MemoryNeed& need, const at::Device& device,
                    const std::vector<std::pair<std::string, MemoryNeed>>& alternatives) {
  const MemoryAvailable have = memory_available(device);
  if (need.total() <= have.bytes) return;
  std::string advice = "; nothing smaller was found to suggest";
  for (const auto& [option, alt] : alternatives)
    if (alt.total() <= have.bytes) {
      advice = "; " + option + " would need about " + format_bytes(double(alt.total()));
      break;
    }
  throw InputError(where, "",
                   "needs about " + need.describe() + ", only " + format_bytes(double(have.bytes)) + " available (" +
                       have.source + ")" + advice);
}

}  // namespace gqa
