// CUDA grouped-query decode attention (first version): one block per (KV head, sequence) streams
// that head's K and V once for all query heads of its group, with an online softmax in float32.
// Slots are processed in tiles of kTile; each thread scores one slot for every head of the group,
// then owns up to two output dims for the V accumulation. The bandwidth-tuned kernel and the
// CUDA-graph decode step are issue #7's work; this one is correct for any group map and head dim.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "kernels/decode_attention.h"

namespace gqa::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = kThreads;
constexpr int kDimsPerThread = kMaxHeadDim / kThreads;

__device__ inline float to_f(float x) { return x; }
__device__ inline float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_f(__half x) { return __half2float(x); }
template <typename T>
__device__ inline T from_f(float x);
template <>
__device__ inline float from_f<float>(float x) {
  return x;
}
template <>
__device__ inline __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}
template <>
__device__ inline __half from_f<__half>(float x) {
  return __float2half(x);
}

template <typename T>
__global__ void decode_attention_kernel(DecodeShape s, const T* __restrict__ q, const T* __restrict__ k,
                                        const T* __restrict__ v, const uint8_t* __restrict__ valid,
                                        const int* __restrict__ group_heads, const int* __restrict__ group_offsets,
                                        T* __restrict__ out) {
  const int g = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const int first = group_offsets[g], group = group_offsets[g + 1] - first;
  __shared__ float qs[kMaxGroupSize][kMaxHeadDim];
  __shared__ float ps[kMaxGroupSize][kTile];
  __shared__ float running_max[kMaxGroupSize], running_sum[kMaxGroupSize], rescale[kMaxGroupSize];

  for (int i = 0; i < group; ++i)
    for (int j = tid; j < s.d_qk; j += kThreads)
      qs[i][j] = to_f(q[(int64_t(b) * s.n_q + group_heads[first + i]) * s.d_qk + j]) * s.scale;
  if (tid < group) {
    running_max[tid] = -FLT_MAX;
    running_sum[tid] = 0.f;
  }
  float acc[kMaxGroupSize][kDimsPerThread];
  for (int i = 0; i < kMaxGroupSize; ++i)
    for (int r = 0; r < kDimsPerThread; ++r) acc[i][r] = 0.f;
  __syncthreads();

  const T* kg = k + (int64_t(b) * s.n_kv + g) * s.capacity * s.d_qk;
  const T* vg = v + (int64_t(b) * s.n_kv + g) * s.capacity * s.d_v;
  for (int64_t start = 0; start < s.length; start += kTile) {
    const int64_t slot = start + tid;
    const bool live = slot < s.length && valid[int64_t(b) * s.capacity + slot];
    for (int i = 0; i < group; ++i) {
      float dot = -FLT_MAX;
      if (live) {
        dot = 0.f;
        for (int j = 0; j < s.d_qk; ++j) dot += qs[i][j] * to_f(kg[slot * s.d_qk + j]);
      }
      ps[i][tid] = dot;
    }
    __syncthreads();
    if (tid < group) {  // new running max per head and the factor that rescales what came before
      float m = running_max[tid];
      for (int t = 0; t < kTile; ++t) m = fmaxf(m, ps[tid][t]);
      rescale[tid] = __expf(running_max[tid] - m);
      running_max[tid] = m;
    }
    __syncthreads();
    for (int i = 0; i < group; ++i) ps[i][tid] = ps[i][tid] == -FLT_MAX ? 0.f : __expf(ps[i][tid] - running_max[i]);
    __syncthreads();
    if (tid < group) {
      float sum = 0.f;
      for (int t = 0; t < kTile; ++t) sum += ps[tid][t];
      running_sum[tid] = running_sum[tid] * rescale[tid] + sum;
    }
    const int64_t tile_len = s.length - start < kTile ? s.length - start : int64_t(kTile);
    for (int r = 0; r < kDimsPerThread; ++r) {
      const int j = tid + r * kThreads;
      if (j >= s.d_v) break;
      for (int i = 0; i < group; ++i) acc[i][r] *= rescale[i];
      for (int64_t t = 0; t < tile_len; ++t) {
        const float vj = to_f(vg[(start + t) * s.d_v + j]);
        for (int i = 0; i < group; ++i) acc[i][r] += ps[i][t] * vj;
      }
    }
    __syncthreads();
  }
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int j = tid + r * kThreads;
    if (j >= s.d_v) break;
    for (int i = 0; i < group; ++i) {
      const float denom = running_sum[i] > 0.f ? running_sum[i] : 1.f;
      out[(int64_t(b) * s.n_q + group_heads[first + i]) * s.d_v + j] = from_f<T>(acc[i][r] / denom);
    }
  }
}

template <typename T>
int launch(const DecodeShape& s, const void* q, const void* k, const void* v, const uint8_t* valid,
           const int* group_heads, const int* group_offsets, void* out, cudaStream_t stream) {
  dim3 grid(s.n_kv, s.batch);
  decode_attention_kernel<T><<<grid, kThreads, 0, stream>>>(s, static_cast<const T*>(q), static_cast<const T*>(k),
                                                            static_cast<const T*>(v), valid, group_heads, group_offsets,
                                                            static_cast<T*>(out));
  return int(cudaGetLastError());
}

}  // namespace

int decode_attention_cuda(const DecodeShape& s, Precision precision, const void* q, const void* k, const void* v,
                          const uint8_t* valid, const int* group_heads, const int* group_offsets, void* out,
                          void* stream) {
  if (s.d_qk > kMaxHeadDim || s.d_v > kMaxHeadDim) return int(cudaErrorInvalidValue);
  auto st = static_cast<cudaStream_t>(stream);
  switch (precision) {
    case Precision::F32: return launch<float>(s, q, k, v, valid, group_heads, group_offsets, out, st);
    case Precision::BF16: return launch<__nv_bfloat16>(s, q, k, v, valid, group_heads, group_offsets, out, st);
    case Precision::F16: return launch<__half>(s, q, k, v, valid, group_heads, group_offsets, out, st);
  }
  return int(cudaErrorInvalidValue);
}

}  // namespace gqa::kernels
