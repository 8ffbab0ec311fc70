#include "core/model/layers.h"

#include "core/error.h"

namespace gqa {

at::Tensor to_device(HostTensor&& h, const Placement& p) {
  at::Tensor t = at::from_blob(h.data.data(), h.shape, at::kFloat).clone();
  return t.to(p.device, p.dtype);
}

namespace {
thread_local ParameterRecorder* active_recorder = nullptr;
}

std::string ModelParameter::key() const {
  return std::string(stack == Stack::Decoder ? "decoder." : "encoder.") + role_name(role) + "." + std::to_string(layer);
}

ParameterRecorder::ParameterRecorder() : previous_(active_recorder) { active_recorder = this; }
ParameterRecorder::~ParameterRecorder() { active_recorder = previous_; }
void ParameterRecorder::record(ModelParameter p) {
  if (active_recorder) active_recorder->recorded_.push_back(std::move(p));
}

at::Tensor load(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, std::vector<int64_t> shape,
                const Placement& p) {
  at::Tensor t = to_device(load_role(ckpt, s, r, layer, shape), p);
  ParameterRecorder::record({s, r, layer, t});
  return t;
}

at::Tensor load_optional(const Checkpoint& ckpt, Stack s, Role r, int64_t layer,
                         std::vector<int64_t> shape, const Placement& p) {
  if (!has_role(ckpt, s, r, layer)) return at::Tensor();
  return load(ckpt, s, r, layer, std::move(shape), p);
}

at::Tensor Norm::operator()(const at::Tensor& x) const {
  if (!rms) return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(weight.scalar_type());
}

at::Tensor activate(const at::Tensor& x, const std::string& name) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return at::gelu(x, "tanh");
  if (name == "gelu") return at::gelu(x);
  if (name == "relu") return at::relu(x);
  if (name == "silu" || name == "swish") return at::silu(x);
  throw InputError("config.json", "activation", "unsupported activation '" + name + "' (gelu_new, gelu, relu, silu)");
}

at::Tensor FeedForward::operator()(const at::Tensor& x) const {
  if (gate.weight.defined()) return down(activate(gate(x), activation) * up(x));
  return down(activate(up(x), activation));
}

}  // namespace gqa
