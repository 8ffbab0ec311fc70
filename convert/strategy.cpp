#include "convert/strategy.h"

#include <stdexcept>

#include "convert/grouping.h"

namespace gqa {
namespace {

struct Entry {
  const char* name;
  Strategy fn;
  bool keeps_scales = false;
};
const Entry kStrategies[] = {
    {"mean", strategy_mean},
    {"first", strategy_first},
    {"random", strategy_random},
    {"weighted", strategy_weighted, true},
    {"random-weighted", strategy_random_weighted, true},
    {"similarity", strategy_similarity},
    {"svd", strategy_svd},
};

}  // namespace

Eigen::MatrixXd augmented_gram(const BlockCalibration* calib, int64_t d) {
  if (!calib) return Eigen::MatrixXd();
  if (calib->input_gram.rows() != d || calib->input_gram.cols() != d || calib->input_sum.size() != d)
    throw std::logic_error("calibration statistics do not match the block's model width");
  Eigen::MatrixXd g(d + 1, d + 1);
  g.topLeftCorner(d, d) = calib->input_gram.cast<double>();
  g.topRightCorner(d, 1) = calib->input_sum.cast<double>();
  g.bottomLeftCorner(1, d) = calib->input_sum.cast<double>().transpose();
  g(d, d) = double(calib->tokens);
  return (g + g.transpose()) / 2;
}

Strategy find_strategy(const std::string& name) {
  for (const auto& e : kStrategies)
    if (name == e.name) return e.fn;
  return nullptr;
}

bool strategy_keeps_scales(const std::string& name) {
  for (const auto& e : kStrategies)
    if (name == e.name) return e.keeps_scales;
  return false;
}

std::vector<std::string> strategy_names() {
  std::vector<std::string> out;
  for (const auto& e : kStrategies) out.push_back(e.name);
  return out;
}

AttentionWeights pool_heads(const AttentionWeights& mha, const std::vector<int>& group_of, const Vector& k_w,
                            const Vector& v_w) {
  const auto members = group_members(group_of);
  const AttentionLayout& l = mha.layout;
  AttentionWeights out = mha;
  out.layout = l;
  out.layout.group_of = group_of;
  out.layout.n_kv = int(members.size());
  const int64_t dqk = l.head_dim_qk, dv = l.head_dim_v;
  out.k = Matrix::Zero(out.layout.n_kv * dqk, mha.d_model());
  out.v = Matrix::Zero(out.layout.n_kv * dv, mha.d_model());
  if (mha.k_bias.size()) out.k_bias = Vector::Zero(out.layout.n_kv * dqk);
  if (mha.v_bias.size()) out.v_bias = Vector::Zero(out.layout.n_kv * dv);
  for (int g = 0; g < out.layout.n_kv; ++g)
    for (int h : members[size_t(g)]) {
      out.k_head(g) += k_w[h] * mha.k_head(h);
      out.v_head(g) += v_w[h] * mha.v_head(h);
      if (mha.k_bias.size()) out.k_bias.segment(g * dqk, dqk) += k_w[h] * mha.k_bias.segment(h * dqk, dqk);
      if (mha.v_bias.size()) out.v_bias.segment(g * dv, dv) += v_w[h] * mha.v_bias.segment(h * dv, dv);
    }
  return out;
}

}  // namespace gqa
