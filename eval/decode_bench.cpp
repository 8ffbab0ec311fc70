#include "eval/decode_bench.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/CachingDeviceAllocator.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/model/attention.h"

namespace gqa {
namespace {

using Clock = std::chrono::steady_clock;

// Peak resident set since the last reset (Linux: writing 5 to clear_refs resets VmHWM).
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

// Peak memory of one batch size's runs: the resident set on CPU; on CUDA the caching allocator's
// peak of allocated bytes (torch.cuda.max_memory_allocated), through c10's device-generic allocator
// interface so no CUDA library is linked here.
c10::DeviceIndex index_of(const at::Device& d) { return d.has_index() ? d.index() : at::accelerator::getDeviceIndex(); }

void reset_peak_memory(const at::Device& d) {
  if (d.is_cuda())
    c10::getDeviceAllocator(d.type())->resetPeakStats(index_of(d));
  else
    reset_peak_rss();
}

int64_t peak_memory_bytes(const at::Device& d) {
  if (!d.is_cuda()) return peak_rss_bytes();
  const auto stats = c10::getDeviceAllocator(d.type())->getDeviceStats(index_of(d));
  return stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

void synchronize(const at::Device& d) {
  // A device-to-host copy waits for the work queued before it; no CUDA headers needed here.
  if (d.is_cuda()) at::zeros({1}, at::TensorOptions().device(d)).cpu();
}

// Seconds per call of `fn`: median and min over `repeats` after a warm-up. Each repeat times enough
// back-to-back calls to last ~5 ms, so a GPU's launch and synchronisation costs average out.
std::pair<double, double> seconds_per_call(const std::function<void()>& fn, const at::Device& dev, int repeats) {
  const auto timed = [&](int64_t n) {
    synchronize(dev);
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) fn();
    synchronize(dev);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  timed(2);  // warm-up: allocator, kernels, page faults
  const double one = std::max(timed(1), 1e-7);
  const int64_t inner = std::clamp<int64_t>(int64_t(std::ceil(5e-3 / one)), 1, 1000);
  std::vector<double> s;
  for (int i = 0; i < std::max(1, repeats); ++i) s.push_back(timed(inner) / double(inner));
  std::sort(s.begin(), s.end());
  return {s[s.size() / 2], s.front()};
}

struct Timing {
  double prefill_s = 0, decode_s = 0;
};

Timing run_once(const Model& model, const at::Tensor& prompt, int64_t new_tokens, bool chunked_prefill) {
  const at::Device dev = model.placement().device;
  const int64_t B = prompt.size(0), P = prompt.size(1);
  const ModelConfig& c = model.config();
  Timing t;
  synchronize(dev);
  auto t0 = Clock::now();
  std::optional<Memory> memory;
  at::Tensor logits;
  KVCache cache = model.new_cache(B, (model.is_encoder_decoder() ? 1 : P) + new_tokens);
  if (model.is_encoder_decoder()) {  // the prompt is the source; decoding starts from the start token
    memory = model.encode(prompt, at::ones_like(prompt));
    at::Tensor start = at::full({B, 1}, c.decoder_start_token_id.value_or(0), prompt.options());
    logits = model.forward(start, at::ones_like(start), &cache, &*memory);
  } else {
    const int64_t chunk = chunked_prefill ? prefill_chunk_tokens(model, B, P + new_tokens) : P;
    for (int64_t start = 0; start < P; start += chunk) {
      const at::Tensor part = prompt.narrow(1, start, std::min(chunk, P - start));
      logits = model.forward(part, at::ones_like(part), &cache);
    }
  }
  at::Tensor next = logits.select(1, logits.size(1) - 1).argmax(-1, true);
  synchronize(dev);
  auto t1 = Clock::now();
  for (int64_t s = 0; s < new_tokens; ++s) {
    logits = model.forward(next, at::ones_like(next), &cache, memory ? &*memory : nullptr);
    next = logits.select(1, 0).argmax(-1, true);  // stays on the device: no per-step host sync
  }
  synchronize(dev);
  auto t2 = Clock::now();
  t.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  t.decode_s = std::chrono::duration<double>(t2 - t1).count();
  return t;
}

}  // namespace

std::vector<DecodeBenchResult> decode_bench(const Model& model, const DecodeBenchOptions& opts) {
  at::NoGradGuard no_grad;
  const at::Device dev = model.placement().device;
  const ModelConfig& c = model.config();
  std::vector<DecodeBenchResult> out;
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  for (int64_t B : opts.batches) {
    at::Tensor prompt = at::randint(0, c.vocab_size, {B, opts.prompt_len}, gen, at::kLong).to(dev);
    reset_peak_memory(dev);
    run_once(model, prompt, opts.new_tokens, opts.chunked_prefill);  // warm-up: allocator, kernels, page faults
    std::vector<double> per_step;
    double prefill = 0;
    for (int r = 0; r < std::max(1, opts.repeats); ++r) {
      const Timing t = run_once(model, prompt, opts.new_tokens, opts.chunked_prefill);
      per_step.push_back(1e3 * t.decode_s / double(std::max<int64_t>(1, opts.new_tokens)));
      prefill = std::max(prefill, double(B * opts.prompt_len) / t.prefill_s);
    }
    std::sort(per_step.begin(), per_step.end());
    DecodeBenchResult r;
    r.batch = B;
    r.ms_per_step_median = per_step[per_step.size() / 2];
    r.ms_per_step_min = per_step.front();
    r.prefill_tokens_per_s = prefill;
    const int64_t slots = (model.is_encoder_decoder() ? 1 : opts.prompt_len) + opts.new_tokens;
    r.kv_cache_bytes = model.new_cache(1, 1).bytes() * B * slots;
    r.peak_bytes = peak_memory_bytes(dev);
    out.push_back(r);
  }
  return out;
}

std::vector<InterleavedDecodeResult> decode_bench_interleaved(const std::vector<const Model*>& models,
                                                              const DecodeBenchOptions& opts, double noisy_spread) {
  if (models.empty()) throw std::invalid_argument("decode_bench_interleaved: no models");
  at::NoGradGuard no_grad;
  int64_t vocab = std::numeric_limits<int64_t>::max();
  for (const Model* m : models) vocab = std::min(vocab, m->config().vocab_size);
  InterleavedTimingOptions timing;
  timing.warmups = 1;
  timing.repeats = std::max(1, opts.repeats);
  timing.noisy_spread = noisy_spread;
  std::vector<InterleavedDecodeResult> out;
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  for (int64_t B : opts.batches) {
    const at::Tensor prompt = at::randint(0, vocab, {B, opts.prompt_len}, gen, at::kLong);
    std::vector<std::function<double()>> runs;
    for (const Model* m : models)
      runs.push_back([m, on_device = prompt.to(m->placement().device), &opts] {
        const Timing t = run_once(*m, on_device, opts.new_tokens, opts.chunked_prefill);
        return t.decode_s / double(std::max<int64_t>(1, opts.new_tokens));
      });
    out.push_back({B, time_interleaved(runs, timing)});
  }
  return out;
}

int64_t prefill_chunk_tokens(const Model& model, int64_t batch, int64_t capacity) {
  const ModelConfig& c = model.config();
  int64_t n_q = 1;
  for (const AttentionLayout& l : c.layouts.at(AttentionModule::DecoderSelf)) n_q = std::max<int64_t>(n_q, l.n_q);
  const int64_t per_token = std::max<int64_t>(1, batch) * std::max(n_q * std::max<int64_t>(1, capacity), c.vocab_size);
  return std::max<int64_t>(1, (int64_t(1) << 28) / std::max<int64_t>(1, per_token));
}

AttentionBenchResult attention_bench(Model& model, int64_t batch, int64_t context, int repeats) {
  at::NoGradGuard no_grad;
  const Placement& p = model.placement();
  const auto opts = at::TensorOptions().device(p.device).dtype(p.dtype);
  std::map<int64_t, const Attention*> grouped;  // by layer; latent layers have no Attention
  for (const AttentionBlock& b : model.attention_blocks())
    if (b.module == AttentionModule::DecoderSelf) grouped[b.layer] = b.attention;
  const std::vector<AttentionLayout>& layouts = model.config().layouts.at(AttentionModule::DecoderSelf);
  // The cache as the model fills it: [B, n_kv, context, d] per layer (a latent layer's one entry
  // [B, 1, context, rank + rope] and its latent as V), every slot valid. Random values: the time
  // does not depend on them.
  KVCache cache = model.new_cache(batch, context);
  cache.begin_step(at::ones({batch, context}, at::kLong));
  AttentionBenchResult r;
  r.batch = batch;
  r.context = context;
  std::vector<at::Tensor> q, k, v;
  for (size_t l = 0; l < layouts.size(); ++l) {
    const AttentionLayout& a = layouts[l];
    // A latent layer attends with its absorbed queries (rank + rope dims per head) over the entries.
    const int64_t query_dims = a.is_latent() ? a.cache_dims_per_token() : a.head_dim_qk;
    const int64_t out_dims = a.is_latent() ? a.latent_rank : a.head_dim_v;
    auto [kl, vl] = cache.append(l, at::randn({batch, a.n_kv, context, query_dims}, opts),
                                 at::randn({batch, a.n_kv, context, out_dims}, opts));
    q.push_back(at::randn({batch, a.n_q, 1, query_dims}, opts));
    r.kv_bytes += int64_t(kl.nbytes()) + (a.is_latent() ? 0 : int64_t(vl.nbytes()));
    r.bytes_read += int64_t(q.back().nbytes()) + batch * a.n_q * out_dims * int64_t(at::elementSize(p.dtype));
    k.push_back(std::move(kl));
    v.push_back(std::move(vl));
  }
  r.bytes_read += r.kv_bytes;
  cache.end_step(context);
  // The mask of the decode step that fills the last slot, as DecoderLM::forward builds it.
  const at::Tensor mask = attention_mask(cache.valid_keys(0), context - 1, 1, /*causal=*/true);
  const auto [median, best] = seconds_per_call(
      [&] {
        for (size_t l = 0; l < layouts.size(); ++l) {
          if (layouts[l].is_latent())
            grouped_attention(q[l], k[l], v[l], mask, false, 1.0 / std::sqrt(double(q[l].size(-1))));
          else
            grouped.at(int64_t(l))->attend_heads(q[l], k[l], v[l], mask);
        }
      },
      p.device, repeats);
  r.ms_median = 1e3 * median;
  r.ms_min = 1e3 * best;
  return r;
}

CopyBenchResult copy_bandwidth(const at::Device& device, int64_t bytes, int repeats) {
  at::NoGradGuard no_grad;
  const int64_t n = std::max<int64_t>(1, bytes / int64_t(sizeof(float)));
  const at::Tensor src = at::ones({n}, at::TensorOptions().device(device).dtype(at::kFloat));
  at::Tensor dst = at::empty_like(src);
  const auto [median, best] = seconds_per_call([&] { dst.copy_(src); }, device, repeats);
  CopyBenchResult r;
  r.bytes = int64_t(src.nbytes());
  r.gb_per_s = 2.0 * double(r.bytes) / median / 1e9;
  r.gb_per_s_best = 2.0 * double(r.bytes) / best / 1e9;
  return r;
}

}  // namespace gqa
