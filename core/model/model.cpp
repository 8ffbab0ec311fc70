#include "core/model/model.h"

#include "core/error.h"
#include "core/model/decoder_lm.h"

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

// Two runtimes serve every family: the encoder-decoder one (T5) and the decoder-only one.
std::unique_ptr<Model> build(const Checkpoint& ckpt, const Placement& p, bool blocks) {
  return ckpt.config().is_encoder_decoder() ? build_t5(ckpt, p, blocks) : build_decoder_lm(ckpt, p, blocks);
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
