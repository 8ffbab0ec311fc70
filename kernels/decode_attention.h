// Grouped-query decode attention: one new query token per sequence attends to its KV cache, and
// each KV head is read once for its whole query group (uneven groups allowed). Plain pointers and
// no torch, so the CUDA file stays quick to compile and the CPU reference runs anywhere.
//
// Layouts (row-major, contiguous):
//   q       [B, n_q, d_qk]            queries of the new token
//   k       [B, n_kv, capacity, d_qk] KV cache (only the first `length` slots are read)
//   v       [B, n_kv, capacity, d_v]
//   valid   [B, capacity]             1 where a slot holds a real token (left padding leaves 0s)
//   out     [B, n_q, d_v]
//   group_heads / group_offsets: CSR list of the query heads of each KV head
//     (heads of group g are group_heads[group_offsets[g] .. group_offsets[g+1]-1]).
#pragma once
#include <cstdint>
#include <vector>

namespace gqa::kernels {

struct DecodeShape {
  int batch, n_q, n_kv, d_qk, d_v;
  int64_t capacity, length;
  float scale;
};

// CSR form of a head -> group map.
void group_lists(const std::vector<int>& group_of, int n_kv, std::vector<int>* heads, std::vector<int>* offsets);

// Plain reference (float32, any sizes).
void decode_attention_reference(const DecodeShape& s, const float* q, const float* k, const float* v,
                                const uint8_t* valid, const int* group_heads, const int* group_offsets, float* out);

enum class Precision { F32, BF16, F16 };
constexpr int kMaxGroupSize = 16;  // query heads per KV head handled by one CUDA block
constexpr int kMaxHeadDim = 256;

#ifdef GQA_HAVE_CUDA
// CUDA version: device pointers, element type given by `precision` (accumulation in float32).
// group_heads / group_offsets are device arrays. Returns a cudaError_t as int (0 = success).
int decode_attention_cuda(const DecodeShape& s, Precision precision, const void* q, const void* k, const void* v,
                          const uint8_t* valid, const int* group_heads, const int* group_offsets, void* out,
                          void* stream);
#endif

}  // namespace gqa::kernels
