// Building blocks shared by every family: weights as plain at::Tensor fields (llama.cpp style, no
// nn::Module), loaded by role from a checkpoint through the name table in core/arch.h.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "core/arch.h"
#include "core/checkpoint.h"

namespace gqa {

struct Placement {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// Runtime dtypes by their option names: "f32" (float32), "bf16" (bfloat16), "f16" (float16).
// InputError naming `option` for anything else.
at::ScalarType parse_runtime_dtype(const std::string& text, const std::string& option = "--dtype");
const char* runtime_dtype_name(at::ScalarType t);  // "f32", "bf16", "f16"
// --dtype auto|f32|bf16|f16 checked without a checkpoint: nullopt for "auto".
std::optional<at::ScalarType> parse_runtime_dtype_or_auto(const std::string& text,
                                                          const std::string& option = "--dtype");
// --dtype auto|f32|bf16|f16. "auto" is the checkpoint's own dtype, as transformers' dtype="auto":
// config.json's torch_dtype (dtype in folders written by transformers 5), else the dtype holding
// most stored weights. float64 checkpoints run in float32.
at::ScalarType runtime_dtype(const std::string& text, const Checkpoint& ckpt, const std::string& option = "--dtype");
// The dtype config.json declares ("dtype", or transformers 4's "torch_dtype"), if any.
std::optional<at::ScalarType> config_dtype(const nlohmann::json& raw);

// A weight of the runtime model and the checkpoint role it came from: what training updates and
// what saving writes back under the checkpoint's own names.
struct ModelParameter {
  Stack stack;
  Role role;
  int64_t layer;
  at::Tensor tensor;
  std::string key() const;  // "decoder.AttnQ.3": unique per model, names optimizer state
};

// While alive, collects every tensor that `load` reads on this thread (load_model gives the list
// to the Model it builds, so no family has to enumerate its weights twice).
class ParameterRecorder {
 public:
  ParameterRecorder();
  ~ParameterRecorder();
  ParameterRecorder(const ParameterRecorder&) = delete;
  ParameterRecorder& operator=(const ParameterRecorder&) = delete;
  std::vector<ModelParameter> take() { return std::move(recorded_); }
  static void record(ModelParameter p);

 private:
  std::vector<ModelParameter> recorded_;
  ParameterRecorder* previous_;
};

// HostTensor (float32) -> at::Tensor on the target device/dtype.
at::Tensor to_device(HostTensor&& h, const Placement& p);

// Loads a role; an optional role that the checkpoint lacks gives an undefined tensor.
at::Tensor load(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, std::vector<int64_t> shape, const Placement& p);
at::Tensor load_optional(const Checkpoint& ckpt, Stack s, Role r, int64_t layer, std::vector<int64_t> shape,
                         const Placement& p);

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }
};

// LayerNorm (weight + bias) or RMSNorm (weight only; T5 and Llama compute it in float32).
struct Norm {
  at::Tensor weight, bias;
  double eps = 1e-5;
  bool rms = false;
  at::Tensor operator()(const at::Tensor& x) const;
};

// activation by HF name: gelu_new / gelu_pytorch_tanh (tanh approximation), gelu, relu, silu.
at::Tensor activate(const at::Tensor& x, const std::string& name);

// Two-layer MLP, or gated (SwiGLU / gated-GELU: act(gate(x)) * up(x)) when gate is defined.
struct FeedForward {
  Linear up, gate, down;
  std::string activation;
  at::Tensor operator()(const at::Tensor& x) const;
};

}  // namespace gqa
