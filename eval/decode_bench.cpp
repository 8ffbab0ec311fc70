#include "eval/decode_bench.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

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

void synchronize(const at::Device& d) {
  // A device-to-host copy waits for the work queued before it; no CUDA headers needed here.
  if (d.is_cuda()) at::zeros({1}, at::TensorOptions().device(d)).cpu();
}

struct Timing {
  double prefill_s = 0, decode_s = 0;
};

Timing run_once(const Model& model, const at::Tensor& prompt, int64_t new_tokens) {
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
    logits = model.forward(prompt, at::ones_like(prompt), &cache);
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
    reset_peak_rss();
    run_once(model, prompt, opts.new_tokens);  // warm-up: allocator, kernels, page faults
    std::vector<double> per_step;
    double prefill = 0;
    for (int r = 0; r < std::max(1, opts.repeats); ++r) {
      const Timing t = run_once(model, prompt, opts.new_tokens);
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
    r.peak_bytes = dev.is_cuda() ? 0 : peak_rss_bytes();
    out.push_back(r);
  }
  return out;
}

}  // namespace gqa
