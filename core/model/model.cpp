#include "core/model/model.h"

#include "core/error.h"

namespace gqa {

Memory Model::encode(const at::Tensor&, const at::Tensor&) const {
  throw InputError(config_.path, "model_type", std::string(family_name(config_.family)) + " has no encoder");
}

KVCache Model::new_cache(int64_t batch, int64_t capacity) const {
  return KVCache(config_.layouts.at(AttentionModule::DecoderSelf), batch, capacity, placement_);
}

namespace {

std::unique_ptr<Model> build(const Checkpoint& ckpt, const Placement& p) {
  switch (ckpt.config().family) {
    case Family::GPT2: return build_gpt2(ckpt, p);
    case Family::GPTNeo: return build_gpt_neo(ckpt, p);
    case Family::Llama: return build_llama(ckpt, p);
    case Family::T5: return build_t5(ckpt, p);
  }
  throw InputError(ckpt.dir(), "model_type", "unsupported");
}

}  // namespace

std::unique_ptr<Model> load_model(const Checkpoint& ckpt, const Placement& p) {
  ParameterRecorder recorder;
  std::unique_ptr<Model> m = build(ckpt, p);
  m->set_parameters(recorder.take());
  return m;
}

std::unique_ptr<Model> load_model(const std::string& dir, const Placement& p) {
  Checkpoint ckpt(dir);
  return load_model(ckpt, p);
}

}  // namespace gqa
