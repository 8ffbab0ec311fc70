// Decode attention: the plain reference against torch's SDPA (CPU, any group map), and on a
// machine with CUDA the kernel against the reference per precision.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/decode_attention.h"

namespace gqa::kernels {
namespace {

struct Case {
  const char* name;
  std::vector<int> group_of;
  int d_qk, d_v;
  int64_t capacity, length;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const Case kCases[] = {
    {"mha_4", {0, 1, 2, 3}, 16, 16, 40, 33},
    {"gqa_8_2", {0, 0, 0, 0, 1, 1, 1, 1}, 32, 32, 300, 260},
    {"mqa_6", {0, 0, 0, 0, 0, 0}, 64, 64, 130, 129},
    {"uneven_332", {0, 0, 0, 1, 1, 1, 2, 2}, 24, 20, 64, 50},
    {"permuted_groups", {1, 0, 1, 0, 2, 2}, 8, 12, 16, 16},
    {"head_dim_256", {0, 0, 1, 1}, 256, 256, 20, 19},
};

struct Inputs {
  DecodeShape shape;
  at::Tensor q, k, v, valid;
  std::vector<int> heads, offsets;
};

Inputs make_inputs(const Case& c, int batch) {
  at::manual_seed(7);
  Inputs in;
  int n_kv = 0;
  for (int g : c.group_of) n_kv = std::max(n_kv, g + 1);
  in.shape = {batch,    int(c.group_of.size()),         n_kv, c.d_qk, c.d_v, c.capacity,
              c.length, 1.0f / std::sqrt(float(c.d_qk))};
  in.q = at::randn({batch, in.shape.n_q, c.d_qk});
  in.k = at::randn({batch, n_kv, c.capacity, c.d_qk});
  in.v = at::randn({batch, n_kv, c.capacity, c.d_v});
  in.valid = at::ones({batch, c.capacity}, at::kByte);
  for (int b = 1; b < batch; ++b)
    in.valid[b].narrow(0, 0, std::min<int64_t>(b * 3, c.length - 1)).zero_();  // left padding
  group_lists(c.group_of, n_kv, &in.heads, &in.offsets);
  return in;
}

at::Tensor run_reference(const Inputs& in) {
  at::Tensor out = at::zeros({in.shape.batch, in.shape.n_q, in.shape.d_v});
  decode_attention_reference(in.shape, in.q.data_ptr<float>(), in.k.data_ptr<float>(), in.v.data_ptr<float>(),
                             in.valid.data_ptr<uint8_t>(), in.heads.data(), in.offsets.data(), out.data_ptr<float>());
  return out;
}

class DecodeAttention : public testing::TestWithParam<Case> {};

TEST_P(DecodeAttention, ReferenceMatchesTorchSdpa) {
  const Case& c = GetParam();
  Inputs in = make_inputs(c, 3);
  at::Tensor got = run_reference(in);
  at::Tensor index = at::tensor(std::vector<int64_t>(c.group_of.begin(), c.group_of.end()), at::kLong);
  at::Tensor k = in.k.narrow(2, 0, c.length).index_select(1, index);
  at::Tensor v = in.v.narrow(2, 0, c.length).index_select(1, index);
  at::Tensor mask = in.valid.narrow(1, 0, c.length).to(at::kBool).view({3, 1, 1, c.length});
  at::Tensor want =
      at::scaled_dot_product_attention(in.q.unsqueeze(2), k, v, mask, 0.0, false, double(in.shape.scale)).squeeze(2);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DecodeAttention, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

#ifdef GQA_HAVE_CUDA
// Registered only where a CUDA device exists (test discovery runs on the machine that tests).
class DecodeAttentionCuda : public testing::TestWithParam<Case> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DecodeAttentionCuda);

TEST_P(DecodeAttentionCuda, KernelMatchesReference) {
  const Case& c = GetParam();
  Inputs in = make_inputs(c, 5);
  at::Tensor want = run_reference(in);
  const at::Device dev(at::kCUDA, 0);
  at::Tensor heads = at::tensor(std::vector<int64_t>(in.heads.begin(), in.heads.end())).to(at::kInt).to(dev);
  at::Tensor offsets = at::tensor(std::vector<int64_t>(in.offsets.begin(), in.offsets.end())).to(at::kInt).to(dev);
  struct P {
    Precision p;
    at::ScalarType t;
    double tol;
  };
  for (P p : {P{Precision::F32, at::kFloat, 1e-4}, P{Precision::BF16, at::kBFloat16, 3e-2},
              P{Precision::F16, at::kHalf, 5e-3}}) {
    at::Tensor q = in.q.to(dev, p.t), k = in.k.to(dev, p.t), v = in.v.to(dev, p.t), valid = in.valid.to(dev);
    at::Tensor out = at::zeros({in.shape.batch, in.shape.n_q, in.shape.d_v}, q.options());
    ASSERT_EQ(decode_attention_cuda(in.shape, p.p, q.data_ptr(), k.data_ptr(), v.data_ptr(), valid.data_ptr<uint8_t>(),
                                    heads.data_ptr<int>(), offsets.data_ptr<int>(), out.data_ptr(), nullptr),
              0);
    // Compare with the reference run on the same rounded inputs.
    Inputs rounded = in;
    rounded.q = in.q.to(p.t).to(at::kFloat);
    rounded.k = in.k.to(p.t).to(at::kFloat);
    rounded.v = in.v.to(p.t).to(at::kFloat);
    EXPECT_LE((out.cpu().to(at::kFloat) - run_reference(rounded)).abs().max().item<double>(), p.tol) << int(p.p);
  }
}

std::vector<Case> cuda_cases() {
  return at::hasCUDA() ? std::vector<Case>(std::begin(kCases), std::end(kCases)) : std::vector<Case>{};
}
INSTANTIATE_TEST_SUITE_P(Shapes, DecodeAttentionCuda, testing::ValuesIn(cuda_cases()),
                         [](const testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });
#endif

}  // namespace
}  // namespace gqa::kernels
