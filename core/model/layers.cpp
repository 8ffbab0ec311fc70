#include "core/model/layers.h"

#include "core/error.h"

namespace gqa {

at::Tensor to_device(HostTensor&& h, const Placement& p) {
  // The tensor takes over the host vector (no copy); .to() copies only when device or dtype differ,
  // so a bf16 runtime holds the bf16 weights alone.
  auto* owned = new std::vector<float>(std::move(h.data));
  at::Tensor t = at::from_blob(
      owned->data(), h.shape, [owned](void*) { delete owned; }, at::TensorOptions().dtype(at::kFloat));
  return t.to(p.device, p.dtype);
}

at::ScalarType parse_runtime_dtype(const std::string& text, const std::string& option) {
  if (text == "f32" || text == "float32") return at::kFloat;
  if (text == "bf16" || text == "bfloat16") return at::kBFloat16;
  if (text == "f16" || text == "float16") return at::kHalf;
  throw InputError(option, "", "expected f32, bf16 or f16, got '" + text + "'");
}

const char* runtime_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "f16";
    default: return "f32";
  }
}

std::optional<at::ScalarType> config_dtype(const nlohmann::json& raw) {
  for (const char* key : {"dtype", "torch_dtype"})
    if (raw.contains(key) && raw[key].is_string()) {
      const std::string d = raw[key].get<std::string>();
      if (d == "float32" || d == "float64") return at::kFloat;
      if (d == "bfloat16") return at::kBFloat16;
      if (d == "float16") return at::kHalf;
    }
  return std::nullopt;
}

std::optional<at::ScalarType> parse_runtime_dtype_or_auto(const std::string& text, const std::string& option) {
  if (text == "auto") return std::nullopt;
  try {
    return parse_runtime_dtype(text, option);
  } catch (const InputError&) {
    throw InputError(option, "", "expected auto, f32, bf16 or f16, got '" + text + "'");
  }
}

at::ScalarType runtime_dtype(const std::string& text, const Checkpoint& ckpt, const std::string& option) {
  if (const auto chosen = parse_runtime_dtype_or_auto(text, option)) return *chosen;
  if (const auto declared = config_dtype(ckpt.config().raw)) return *declared;
  switch (ckpt.weight_dtype()) {
    case DType::BF16: return at::kBFloat16;
    case DType::F16: return at::kHalf;
    default: return at::kFloat;
  }
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

at::Tensor load_optional(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, std::vector<int64_t> shape,
                         const Placement& p) {
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
