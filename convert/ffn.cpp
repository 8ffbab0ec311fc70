#include "convert/ffn.h"

#include <cmath>
#include <random>

#include "convert/attention_weights.h"
#include "core/arch.h"
#include "core/error.h"

namespace gqa {
namespace {

std::vector<Stack> ffn_stacks(const ModelConfig& c) {
  return c.is_encoder_decoder() ? std::vector<Stack>{Stack::Encoder, Stack::Decoder}
                                : std::vector<Stack>{Stack::Decoder};
}

int64_t layers_of(const ModelConfig& c, Stack s) { return s == Stack::Encoder ? c.n_encoder_layers : c.n_layers; }

}  // namespace

int64_t ffn_unit_params(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  int64_t total = 0;
  for (Stack s : ffn_stacks(c))
    for (int64_t l = 0; l < layers_of(c, s); ++l) {
      total += c.d_model * (c.gated_ffn ? 3 : 2);
      for (Role r : {Role::FfnUpBias, Role::FfnGateBias})
        if (has_role(ckpt, s, r, l)) ++total;
    }
  return total;
}

void widen_ffn(const Checkpoint& in, int64_t extra, uint64_t seed, CheckpointWriter& writer,
               std::set<std::string>* replaced) {
  const ModelConfig& c = in.config();
  const int64_t d = c.d_model, f = c.ffn_dim, wide = f + extra;
  for (Stack s : ffn_stacks(c))
    for (int64_t l = 0; l < layers_of(c, s); ++l)
      for (Role role : {Role::FfnUp, Role::FfnGate, Role::FfnDown, Role::FfnUpBias, Role::FfnGateBias}) {
        const auto name = role_tensor_name(in, s, role, l);
        if (!name) continue;
        const bool down = role == Role::FfnDown, bias = role == Role::FfnUpBias || role == Role::FfnGateBias;
        const std::vector<int64_t> shape = down   ? std::vector<int64_t>{d, f}
                                           : bias ? std::vector<int64_t>{f}
                                                  : std::vector<int64_t>{f, d};
        const auto loc = locate(c, s, role, l);
        const DType dtype = in.tensor(*name).dtype;
        const std::vector<int64_t> out_linear = down   ? std::vector<int64_t>{d, wide}
                                                : bias ? std::vector<int64_t>{wide}
                                                       : std::vector<int64_t>{wide, d};
        TensorToWrite t;
        t.name = *name;
        t.dtype = dtype;
        t.shape = loc->conv1d && !bias ? std::vector<int64_t>{out_linear[1], out_linear[0]} : out_linear;
        t.nbytes = size_t(bias ? wide : wide * d) * dtype_size(dtype);
        const uint64_t salt = seed * 1000003u + uint64_t(l) * 31u + uint64_t(role) + (s == Stack::Encoder ? 7919u : 0u);
        t.fill = [&in, s, role, l, shape, down, bias, extra, conv1d = loc->conv1d, dtype, salt](uint8_t* dst) {
          HostTensor h = load_role(in, s, role, l, shape);
          const int64_t rows = h.shape[0], cols = h.shape.size() == 2 ? h.shape[1] : 1;
          const Matrix old = Eigen::Map<const Matrix>(h.data.data(), rows, cols);
          Matrix out;
          if (down) {  // new input columns zero: the new units add nothing until trained
            out = Matrix::Zero(rows, cols + extra);
            out.leftCols(cols) = old;
          } else {
            out = Matrix::Zero(rows + extra, cols);
            out.topRows(rows) = old;
            if (!bias) {  // new rows drawn like the existing ones
              const double mean = old.mean();
              const double sd = std::sqrt((old.array() - float(mean)).square().mean());
              std::mt19937_64 rng(salt);
              std::normal_distribution<float> normal(0.0f, float(sd));
              for (int64_t r = rows; r < rows + extra; ++r)
                for (int64_t k = 0; k < cols; ++k) out(r, k) = normal(rng);
            }
          }
          store_matrix(out, conv1d && !bias, dtype, dst);
        };
        writer.add(std::move(t));
        replaced->insert(*name);
      }
}

}  // namespace gqa
