#include "core/model/model.h"

#include "core/error.h"

namespace gqa {

Memory Model::encode(const at::Tensor&, const at::Tensor&) const {
  throw InputError(config_.path, "model_type", std::string(family_name(config_.family)) + " has no encoder");
}

KVCache Model::new_cache(int64_t batch, int64_t capacity) const {
  if (residency() == Residency::OneBlock)
    throw std::logic_error("a OneBlock model has no KV cache (load the whole model to generate)");
  return KVCache(config_.layouts.at(AttentionModule::DecoderSelf), batch, capacity, placement_);
}

std::vector<std::pair<int64_t, int64_t>> Model::stream_slices(int64_t sequences) const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t first = 0; first < sequences; first += stream_batch_)
    out.emplace_back(first, std::min(stream_batch_, sequences - first));
  return out;
}

namespace {

std::unique_ptr<Model> build(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  switch (ckpt.config().family) {
    case Family::GPT2: return build_gpt2(ckpt, p, blocks);
    case Family::GPTNeo: return build_gpt_neo(ckpt, p, blocks);
    case Family::Llama: return build_llama(ckpt, p, blocks);
    case Family::T5: return build_t5(ckpt, p, blocks);
  }
  throw InputError(ckpt.dir(), "model_type", "unsupported");
}

}  // namespace

std::unique_ptr<Model> load_model(const Checkpoint& ckpt, const Placement& p) {
  ParameterRecorder recorder;
  std::unique_ptr<Model> m = build(ckpt, p, /*blocks=*/true);
  m->set_parameters(recorder.take());
  return m;
}

std::unique_ptr<Model> load_model(std::shared_ptr<const Checkpoint> ckpt, const Placement& p, Residency r) {
  if (r == Residency::Whole) return load_model(*ckpt, p);
  ParameterRecorder recorder;
  std::unique_ptr<Model> m = build(*ckpt, p, /*blocks=*/false);
  m->set_parameters(recorder.take());
  m->set_stream_source(std::move(ckpt));
  return m;
}

std::unique_ptr<Model> load_model(const std::string& dir, const Placement& p, Residency r) {
  return load_model(std::make_shared<const Checkpoint>(dir), p, r);
}

}  // namespace gqa
