#include "core/model/recompute.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <memory>
#include <string>
#include <utility>

namespace gqa {
namespace {

thread_local bool recomputing_ = false;

// Autocast is thread-local state: CUDA runs backward on its own device threads, where it is off.
// The recompute must cast as the forward did, or the recomputed activations (and so the gradients)
// would differ.
struct AutocastState {
  struct Device {
    at::DeviceType type;
    bool enabled;
    at::ScalarType dtype;
  };
  std::vector<Device> devices;

  // The inputs' device type and CPU (ops on CPU tensors inside a CUDA block), as
  // torch.utils.checkpoint captures.
  static AutocastState capture(at::DeviceType input_device) {
    AutocastState s;
    for (at::DeviceType t : {input_device, at::kCPU}) {
      if (!at::autocast::is_autocast_available(t) || (!s.devices.empty() && s.devices.front().type == t)) continue;
      s.devices.push_back({t, at::autocast::is_autocast_enabled(t), at::autocast::get_autocast_dtype(t)});
    }
    return s;
  }
};

// Sets an autocast state for the recompute and puts the thread's own back after it. It also turns
// the cast cache off: on a backward thread no autocast scope ever ends to clear it, so its casts of
// the weights would outlive the optimizer's in-place updates and feed stale weights to later steps.
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& s) {
    for (const auto& d : s.devices) {
      saved_.devices.push_back(
          {d.type, at::autocast::is_autocast_enabled(d.type), at::autocast::get_autocast_dtype(d.type)});
      apply(d);
    }
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~AutocastScope() {
    for (auto it = saved_.devices.rbegin(); it != saved_.devices.rend(); ++it) apply(*it);
    at::autocast::set_autocast_cache_enabled(cache_enabled_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  static void apply(const AutocastState::Device& d) {
    at::autocast::set_autocast_enabled(d.type, d.enabled);
    at::autocast::set_autocast_dtype(d.type, d.dtype);
  }
  AutocastState saved_;
  bool cache_enabled_ = at::autocast::is_autocast_cache_enabled();
};

class RecomputingScope {
 public:
  RecomputingScope() : previous_(recomputing_) { recomputing_ = true; }
  ~RecomputingScope() { recomputing_ = previous_; }
  RecomputingScope(const RecomputingScope&) = delete;
  RecomputingScope& operator=(const RecomputingScope&) = delete;

 private:
  bool previous_;
};

// The block's inputs as they are kept between forward and backward: detached (the node's edges
// already lead to their graphs), with whether each needed a gradient and its version, to refuse a
// recompute from inputs that were modified in place since the forward.
struct SavedInput {
  at::Tensor value;
  bool requires_grad;
  int64_t version;
};

// The autograd node standing for one checkpointed block: input 0 is the gradient of the block's
// output, output i the gradient of block input i.
class RecomputeBackward : public torch::autograd::Node {
 public:
  RecomputeBackward(CheckpointedBlock block, std::vector<SavedInput> inputs, AutocastState autocast)
      : block_(std::move(block)), inputs_(std::move(inputs)), autocast_(std::move(autocast)) {}

  std::string name() const override { return "RecomputeBackward"; }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    TORCH_CHECK(block_,
                "backward through a checkpointed block a second time (its inputs were freed after the first; "
                "use retain_graph=true)");
    std::vector<at::Tensor> leaves = fresh_leaves();
    at::Tensor out = recompute(leaves);
    torch::autograd::variable_list result(leaves.size());
    // Without a gradient for the output, or with nothing in the block needing one, there is nothing
    // to propagate: every input gets an undefined (zero) gradient.
    if (!grads.at(0).defined() || !out.requires_grad()) return result;
    // Accumulates into the weights' .grad as an uncheckpointed backward does, and into the leaves'.
    torch::autograd::backward({out}, {grads[0]});
    for (size_t i = 0; i < leaves.size(); ++i)
      if (inputs_[i].requires_grad) result[i] = leaves[i].grad();
    return result;
  }

  void release_variables() override {
    block_ = nullptr;
    inputs_.clear();
  }

 private:
  // New leaves over the saved values, needing grad where the originals did, so the recompute's
  // backward stops at the block's inputs and hands their gradients back to the outer graph.
  std::vector<at::Tensor> fresh_leaves() const {
    std::vector<at::Tensor> leaves;
    for (const SavedInput& in : inputs_) {
      if (in.value.defined())
        TORCH_CHECK(in.value._version() == in.version,
                    "an input of a checkpointed block was modified in place between forward and backward");
      at::Tensor leaf = in.value.defined() ? in.value.detach() : in.value;
      if (in.requires_grad) leaf.requires_grad_(true);
      leaves.push_back(std::move(leaf));
    }
    return leaves;
  }

  at::Tensor recompute(const std::vector<at::Tensor>& leaves) const {
    at::AutoGradMode grad(true);
    AutocastScope autocast(autocast_);
    RecomputingScope recomputing;
    return block_(leaves);
  }

  CheckpointedBlock block_;
  std::vector<SavedInput> inputs_;
  AutocastState autocast_;
};

at::DeviceType device_type_of(const std::vector<at::Tensor>& inputs) {
  for (const at::Tensor& t : inputs)
    if (t.defined()) return t.device().type();
  return at::kCPU;
}

// The block's output as a tensor of its own: the node becomes its grad_fn, which must not rewrite
// the history of an input (a block returning one of them) or of a view's base.
at::Tensor own_output(at::Tensor out, const std::vector<at::Tensor>& inputs) {
  bool aliases = out.is_view();
  for (const at::Tensor& t : inputs) aliases = aliases || (t.defined() && t.is_same(out));
  return aliases ? out.clone() : out;
}

}  // namespace

bool recomputing() { return recomputing_; }

at::Tensor run_checkpointed(const CheckpointedBlock& block, const std::vector<at::Tensor>& inputs) {
  if (!at::GradMode::is_enabled()) return block(inputs);
  const AutocastState autocast = AutocastState::capture(device_type_of(inputs));
  std::vector<SavedInput> saved;
  for (const at::Tensor& t : inputs)
    saved.push_back({t.defined() ? t.detach() : t, t.defined() && t.requires_grad(), t.defined() ? t._version() : 0});
  at::Tensor out;
  {
    at::NoGradGuard no_grad;  // nothing inside stores activations for backward
    out = own_output(block(inputs), inputs);
  }
  TORCH_CHECK(out.is_floating_point() || out.is_complex(), "a checkpointed block must return a floating-point tensor");
  std::shared_ptr<RecomputeBackward> node(new RecomputeBackward(block, std::move(saved), autocast),
                                          torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::create_gradient_edge(out, node);
  return out;
}

}  // namespace gqa
