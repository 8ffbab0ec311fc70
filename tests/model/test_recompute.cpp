// Activation checkpointing (core/model/recompute.h): run_checkpointed on small blocks (when it
// recomputes, which gradients it gives, the autocast state of the recompute), then whole models
// of every family (fresh random checkpoints from core/init_model, float32): gradients and loss
// with checkpointing equal those without, under bf16 autocast too, with gradient accumulation, and
// the autograd graph really keeps one node per block instead of the blocks' insides.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/init_model.h"
#include "core/model/model.h"
#include "core/model/recompute.h"
#include "tests/model/oracle.h"
#include "tests/test_util.h"

namespace gqa {
namespace {

using test::max_abs_diff;

// CPU bf16 autocast for a scope; the cast cache is cleared after, as leaving torch.autocast does.
class CpuAutocast {
 public:
  CpuAutocast()
      : enabled_(at::autocast::is_autocast_enabled(at::kCPU)), dtype_(at::autocast::get_autocast_dtype(at::kCPU)) {
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
  }
  ~CpuAutocast() {
    at::autocast::set_autocast_enabled(at::kCPU, enabled_);
    at::autocast::set_autocast_dtype(at::kCPU, dtype_);
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
  at::ScalarType dtype_;
};

std::string grad_fn_name(const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : ""; }

// Every node of the autograd graph behind `t`, by name (a count per name).
std::map<std::string, int> graph_nodes(const at::Tensor& t) {
  std::map<std::string, int> names;
  std::unordered_set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> todo;
  if (t.grad_fn()) todo.push_back(t.grad_fn().get());
  while (!todo.empty()) {
    torch::autograd::Node* n = todo.back();
    todo.pop_back();
    if (!seen.insert(n).second) continue;
    ++names[n->name()];
    for (const auto& e : n->next_edges())
      if (e.function) todo.push_back(e.function.get());
  }
  return names;
}

int total(const std::map<std::string, int>& names) {
  int n = 0;
  for (const auto& [name, count] : names) n += count;
  return n;
}

// ---- run_checkpointed on a small block ----

struct SmallBlock {
  at::Tensor w = at::randn({4, 4}).requires_grad_(true);
  int calls = 0;
  std::vector<bool> recomputing_seen;
  at::Tensor operator()(const std::vector<at::Tensor>& in) {
    ++calls;
    recomputing_seen.push_back(recomputing());
    return at::tanh(at::matmul(in[0], w)) * in[1];
  }
};

CheckpointedBlock bind(SmallBlock& b) {
  return [&b](const std::vector<at::Tensor>& in) { return b(in); };
}

TEST(RunCheckpointed, WithoutGradModeItIsAPlainCall) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}).requires_grad_(true), y = at::randn({3, 4});
  at::NoGradGuard no_grad;
  at::Tensor out = run_checkpointed(bind(b), {x, y});
  EXPECT_EQ(b.calls, 1);
  EXPECT_FALSE(out.requires_grad());
  EXPECT_EQ(max_abs_diff(out, at::tanh(at::matmul(x, b.w)) * y), 0.0);
}

// Forward once without history, recompute once in backward; the gradients of the inputs and of
// the captured weight are those of the plain block.
TEST(RunCheckpointed, RecomputesInBackwardAndGivesThePlainGradients) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}).requires_grad_(true), y = at::randn({3, 4}).requires_grad_(true);
  at::Tensor out = run_checkpointed(bind(b), {x, y});
  EXPECT_EQ(grad_fn_name(out), "RecomputeBackward");
  EXPECT_EQ(b.calls, 1);
  at::Tensor gx, gy, gw;
  {
    at::Tensor up = at::randn({3, 4});
    (out * up).sum().backward();
    EXPECT_EQ(b.calls, 2);
    EXPECT_EQ(b.recomputing_seen, (std::vector<bool>{false, true}));
    EXPECT_FALSE(recomputing());
    gx = x.grad().clone(), gy = y.grad().clone(), gw = b.w.grad().clone();
    x.mutable_grad() = y.mutable_grad() = b.w.mutable_grad() = at::Tensor();
    (b({x, y}) * up).sum().backward();
  }
  EXPECT_EQ(max_abs_diff(gx, x.grad()), 0.0);
  EXPECT_EQ(max_abs_diff(gy, y.grad()), 0.0);
  EXPECT_EQ(max_abs_diff(gw, b.w.grad()), 0.0);
}

// A frozen input (a frozen embedding under trained blocks): the weight inside still gets its gradient.
TEST(RunCheckpointed, WeightsGetGradientsWhenNoInputNeedsOne) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}), y = at::randn({3, 4});
  at::Tensor out = run_checkpointed(bind(b), {x, y});
  ASSERT_EQ(grad_fn_name(out), "RecomputeBackward");
  out.sum().backward();
  ASSERT_TRUE(b.w.grad().defined());
  at::Tensor g = b.w.grad().clone();
  b.w.mutable_grad() = at::Tensor();
  b({x, y}).sum().backward();
  EXPECT_EQ(max_abs_diff(g, b.w.grad()), 0.0);
  EXPECT_FALSE(x.grad().defined());
}

TEST(RunCheckpointed, ASecondBackwardWithoutRetainGraphIsAnError) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}).requires_grad_(true), y = at::randn({3, 4});
  at::Tensor loss = run_checkpointed(bind(b), {x, y}).sum();
  loss.backward();
  EXPECT_THROW(loss.backward(), c10::Error);
}

TEST(RunCheckpointed, AnInputModifiedInPlaceBeforeBackwardIsAnError) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}).requires_grad_(true), y = at::randn({3, 4});
  at::Tensor loss = run_checkpointed(bind(b), {x, y}).sum();
  y.add_(1.0);
  EXPECT_THROW(loss.backward(), c10::Error);
}

// The forward ran under bf16 autocast; backward runs on a thread that never enabled it (as CUDA's
// backward threads). The recompute must still cast as the forward did, and the autocast state of
// that thread must be as it was after.
TEST(RunCheckpointed, TheRecomputeRunsUnderTheForwardsAutocastState) {
  at::Tensor w = at::randn({4, 4}).requires_grad_(true);
  std::vector<at::ScalarType> matmul_dtypes;
  auto block = [&](const std::vector<at::Tensor>& in) {
    at::Tensor h = at::matmul(in[0], w);
    matmul_dtypes.push_back(h.scalar_type());
    return h.to(at::kFloat);
  };
  at::Tensor x = at::randn({3, 4}).requires_grad_(true);
  at::Tensor loss;
  {
    CpuAutocast autocast;
    loss = run_checkpointed(block, {x}).sum();
  }
  bool enabled_after = true, cache_after = false;
  std::thread other([&] {
    loss.backward();
    enabled_after = at::autocast::is_autocast_enabled(at::kCPU);
    cache_after = at::autocast::is_autocast_cache_enabled();
  });
  other.join();
  EXPECT_EQ(matmul_dtypes, (std::vector<at::ScalarType>{at::kBFloat16, at::kBFloat16}));
  EXPECT_FALSE(enabled_after);
  EXPECT_TRUE(cache_after);
  ASSERT_TRUE(w.grad().defined());
  ASSERT_TRUE(x.grad().defined());
}

// Backward inside the autocast scope: the no-grad forward must not leave casts of the weight
// without history in autocast's cache for the recompute to reuse (the weight would get no gradient;
// PyTorch gives such cached casts their history since its fix of issue 158232).
TEST(RunCheckpointed, WeightsGetGradientsWhenBackwardRunsUnderAutocast) {
  SmallBlock b;
  at::Tensor x = at::randn({3, 4}).requires_grad_(true), y = at::randn({3, 4});
  CpuAutocast autocast;
  run_checkpointed(bind(b), {x, y}).sum().backward();
  ASSERT_TRUE(b.w.grad().defined());
  at::Tensor g = b.w.grad().clone();
  b.w.mutable_grad() = at::Tensor();
  b({x, y}).sum().backward();
  EXPECT_EQ(max_abs_diff(g, b.w.grad()), 0.0);
}

// ---- whole models ----

struct Family_ {
  std::string name;
  nlohmann::json shape;
};

void PrintTo(const Family_& f, std::ostream* os) { *os << f.name; }

std::vector<Family_> families() {
  auto base = [](const char* family) {
    return nlohmann::json{{"family", family}, {"layers", 2}, {"d_model", 32}, {"heads", 4}, {"vocab_size", 64}};
  };
  std::vector<Family_> f = {
      {"gpt2", base("gpt2")}, {"gpt_neo", base("gpt_neo")}, {"llama", base("llama")}, {"t5", base("t5")}};
  f[1].shape["window_size"] = 3;  // local attention in every other layer
  f.push_back({"llama_gqa", base("llama")});
  f.back().shape["kv_heads"] = 2;
  f.push_back({"gpt2_uneven_groups", base("gpt2")});
  f.back().shape["group_map"] = {0, 0, 0, 1};
  f.push_back({"t5_gqa", base("t5")});
  f.back().shape["kv_heads"] = 2;
  f.back().shape["encoder_layers"] = 3;
  return f;
}

struct Batch {
  at::Tensor ids, mask, decoder_ids, targets;
};

// Decoder-only: left-padded rows (padding targets ignored). T5: unpadded decoder inputs over a
// padded encoder input.
Batch random_batch(int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  Batch b;
  b.ids = at::randint(vocab, {2, 7}, at::kLong);
  b.mask = at::ones({2, 7}, at::kLong);
  b.mask[1].narrow(0, 0, 2).zero_();
  b.decoder_ids = at::randint(vocab, {2, 5}, at::kLong);
  return b;
}

class CheckpointedModel : public testing::TestWithParam<Family_> {
 protected:
  void SetUp() override {
    dir_ = tmp_.file(GetParam().name);
    write_initial_checkpoint(parse_model_shape(GetParam().shape, "test"), dir_, 3, false);
    model_ = load_model(dir_);
    for (const ModelParameter& p : model_->parameters()) p.tensor.requires_grad_(true);
  }

  int64_t blocks() const {
    const ModelConfig& c = model_->config();
    return c.n_layers + (model_->is_encoder_decoder() ? c.n_encoder_layers : 0);
  }

  at::Tensor loss(const Batch& b) const {
    const int64_t vocab = model_->config().vocab_size;
    if (model_->is_encoder_decoder()) {
      Memory memory = model_->encode(b.ids, b.mask);
      at::Tensor logits = model_->forward(b.decoder_ids, at::ones_like(b.decoder_ids), nullptr, &memory);
      at::Tensor targets = b.decoder_ids.roll(-1, 1);
      return at::cross_entropy_loss(logits.reshape({-1, vocab}).to(at::kFloat), targets.reshape(-1));
    }
    at::Tensor logits = model_->forward(b.ids, b.mask);
    at::Tensor targets = b.ids.roll(-1, 1).masked_fill(b.mask.logical_not(), -100);
    return at::cross_entropy_loss(logits.reshape({-1, vocab}).to(at::kFloat), targets.reshape(-1));
  }

  void zero_grads() const {
    for (const ModelParameter& p : model_->parameters()) p.tensor.mutable_grad() = at::Tensor();
  }

  std::vector<at::Tensor> grads() const {
    std::vector<at::Tensor> g;
    for (const ModelParameter& p : model_->parameters())
      g.push_back(p.tensor.grad().defined() ? p.tensor.grad().clone() : at::Tensor());
    return g;
  }

  struct Run {
    std::vector<double> losses;
    std::vector<at::Tensor> grads;
  };

  // Forward + backward of each batch (gradients accumulating), from zero gradients.
  Run train(bool checkpointing, const std::vector<Batch>& batches, bool autocast = false) const {
    model_->set_activation_checkpointing(checkpointing);
    zero_grads();
    Run r;
    for (const Batch& b : batches) {
      at::Tensor l;
      {
        std::unique_ptr<CpuAutocast> scope = autocast ? std::make_unique<CpuAutocast>() : nullptr;
        l = loss(b);
      }
      l.backward();  // outside autocast, as recommended: the recompute must restore it itself
      r.losses.push_back(l.item<double>());
    }
    r.grads = grads();
    model_->set_activation_checkpointing(false);
    return r;
  }

  // Every parameter has a gradient in both runs, within `tolerance` of the other relative to the
  // largest entry of the plain gradient (absolute when `relative` is false).
  void expect_same_grads(const Run& plain, const Run& ckpt, double tolerance, bool relative) const {
    const auto& params = model_->parameters();
    ASSERT_EQ(plain.grads.size(), params.size());
    ASSERT_EQ(ckpt.grads.size(), params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].tensor.requires_grad()) {  // frozen: no gradient either way
        EXPECT_FALSE(plain.grads[i].defined() || ckpt.grads[i].defined()) << params[i].key();
        continue;
      }
      ASSERT_TRUE(plain.grads[i].defined()) << params[i].key();
      ASSERT_TRUE(ckpt.grads[i].defined()) << params[i].key();
      const double scale = relative ? std::max(plain.grads[i].abs().max().item<double>(), 1e-12) : 1.0;
      EXPECT_LE(max_abs_diff(plain.grads[i], ckpt.grads[i]) / scale, tolerance) << params[i].key();
    }
  }

  test::TempDir tmp_{"gqa-recompute"};
  std::string dir_;
  std::unique_ptr<Model> model_;
};

TEST_P(CheckpointedModel, SameLossAndGradientsAsWithout) {
  const std::vector<Batch> batch = {random_batch(model_->config().vocab_size, 1)};
  const Run plain = train(false, batch), ckpt = train(true, batch);
  EXPECT_EQ(plain.losses, ckpt.losses);
  expect_same_grads(plain, ckpt, 1e-6, /*relative=*/false);
}

// Backward runs outside the autocast scope, so the bf16 recompute only happens if the node
// restores the forward's state; a float32 recompute differs by 2e-3 to 1 (relative) here, hence the
// tolerance of 1e-4 rather than bf16's precision.
// T5's relative position tables are frozen here: SDPA on CPU takes its fused kernel for a mask that
// needs no gradient (the no-grad forward) and the math kernel for one that does (the recompute and
// the plain forward), and in bf16 the two differ by about 1e-2 in the encoder output: the
// checkpointed loss is then the no-grad evaluation's, not the plain training forward's.
TEST_P(CheckpointedModel, SameGradientsUnderBf16Autocast) {
  for (const ModelParameter& p : model_->parameters())
    if (p.role == Role::AttnRelativeBias) p.tensor.requires_grad_(false);
  const std::vector<Batch> batch = {random_batch(model_->config().vocab_size, 2)};
  const Run plain = train(false, batch, true), ckpt = train(true, batch, true);
  EXPECT_EQ(plain.losses, ckpt.losses);
  expect_same_grads(plain, ckpt, 1e-4, /*relative=*/true);
}

TEST_P(CheckpointedModel, GradientAccumulationOverMicroBatches) {
  const int64_t vocab = model_->config().vocab_size;
  const std::vector<Batch> batches = {random_batch(vocab, 3), random_batch(vocab, 4)};
  const Run plain = train(false, batches), ckpt = train(true, batches);
  EXPECT_EQ(plain.losses, ckpt.losses);
  expect_same_grads(plain, ckpt, 1e-6, /*relative=*/false);
}

// What backward keeps: with checkpointing every block is one RecomputeBackward node (holding only
// its inputs) instead of the nodes of its attention and feed-forward with their saved activations.
TEST_P(CheckpointedModel, TheGraphKeepsOneNodePerBlock) {
  const Batch b = random_batch(model_->config().vocab_size, 5);
  const auto plain = graph_nodes(loss(b));
  model_->set_activation_checkpointing(true);
  const auto ckpt = graph_nodes(loss(b));
  EXPECT_EQ(plain.count("RecomputeBackward"), 0u);
  ASSERT_EQ(ckpt.count("RecomputeBackward"), 1u);
  EXPECT_EQ(ckpt.at("RecomputeBackward"), blocks());
  // Each plain block has at least its projections (4 matmuls) and feed-forward (2) as nodes.
  EXPECT_LE(total(ckpt) + 5 * blocks(), total(plain)) << "plain " << total(plain) << " checkpointed " << total(ckpt);
}

// Only training forwards are checkpointed: without grad mode the model runs as always.
TEST_P(CheckpointedModel, NoGradForwardIsUnchanged) {
  const Batch b = random_batch(model_->config().vocab_size, 6);
  at::Tensor plain_loss = loss(b).detach();
  model_->set_activation_checkpointing(true);
  at::NoGradGuard no_grad;
  EXPECT_EQ(loss(b).item<double>(), plain_loss.item<double>());
}

// A calibration observer sees each block once per forward, not again in the recompute.
TEST_P(CheckpointedModel, ObserverSeesEachBlockOncePerForward) {
  std::map<std::pair<AttentionModule, int64_t>, int> seen;
  model_->set_observer([&](AttentionModule m, int64_t l, const at::Tensor&, const at::Tensor&) { ++seen[{m, l}]; });
  model_->set_activation_checkpointing(true);
  loss(random_batch(model_->config().vocab_size, 7)).backward();
  ASSERT_FALSE(seen.empty());
  for (const auto& [key, count] : seen) EXPECT_EQ(count, 1) << int(key.first) << " layer " << key.second;
}

INSTANTIATE_TEST_SUITE_P(Families, CheckpointedModel, testing::ValuesIn(families()),
                         [](const testing::TestParamInfo<Family_>& i) { return i.param.name; });

}  // namespace
}  // namespace gqa
