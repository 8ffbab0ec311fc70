#include "uptrain/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gqa {

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opts) : groups_(std::move(groups)), opts_(opts) {
  for (const ParamGroup& g : groups_)
    for (size_t i = 0; i < g.params.size(); ++i)
      state_[g.keys[i]] = {at::zeros_like(g.params[i], at::MemoryFormat::Contiguous),
                           at::zeros_like(g.params[i], at::MemoryFormat::Contiguous)};
}

void adamw_update(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                  const at::Tensor& exp_avg_sq, const AdamWOptions& opts, double lr, bool decay, int64_t step) {
  const double bias1 = 1.0 - std::pow(opts.beta1, double(step));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(opts.beta2, double(step)));
  at::Tensor p = param, m = exp_avg, v = exp_avg_sq;
  if (decay && opts.weight_decay != 0) p.mul_(1.0 - lr * opts.weight_decay);
  m.lerp_(grad, 1.0 - opts.beta1);
  v.mul_(opts.beta2).addcmul_(grad, grad, 1.0 - opts.beta2);
  at::Tensor denom = (v.sqrt() / bias2_sqrt).add_(opts.eps);
  p.addcdiv_(m, denom, -lr / bias1);
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  for (const ParamGroup& g : groups_)
    for (size_t i = 0; i < g.params.size(); ++i) {
      const at::Tensor& grad = g.params[i].grad();
      if (!grad.defined()) continue;
      const auto& [exp_avg, exp_avg_sq] = state_.at(g.keys[i]);
      adamw_update(g.params[i], grad, exp_avg, exp_avg_sq, opts_, lr * g.lr_scale, g.decay, step_);
    }
}

int64_t AdamW::held_bytes() const {
  int64_t bytes = 0;
  for (const auto& [key, s] : state_) bytes += (s.first.numel() + s.second.numel()) * int64_t(s.first.element_size());
  return bytes;
}

std::map<std::string, at::Tensor> AdamW::state_tensors() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, s] : state_) {
    out[key + ".exp_avg"] = s.first;
    out[key + ".exp_avg_sq"] = s.second;
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& tensors, int64_t step) {
  at::NoGradGuard no_grad;
  for (auto& [key, s] : state_) {
    for (auto [suffix, dst] : {std::pair<const char*, at::Tensor*>{".exp_avg", &s.first}, {".exp_avg_sq", &s.second}}) {
      auto it = tensors.find(key + suffix);
      if (it == tensors.end())
        throw InputError("optimizer.safetensors", key + suffix, "missing from the saved optimizer state");
      if (!it->second.sizes().equals(dst->sizes()))
        throw InputError("optimizer.safetensors", key + suffix, "shape differs from the model's parameter");
      dst->copy_(it->second);
    }
  }
  step_ = step;
}

void AdamW::remap_state(const std::string& key, const std::function<at::Tensor(const at::Tensor&)>& fn) {
  at::NoGradGuard no_grad;
  auto& [m, v] = state_.at(key);
  m.copy_(fn(m));
  v.copy_(fn(v));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().to(at::kFloat).norm());
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm().item<double>();
  const double coef = clip_coefficient(total, max_norm);
  if (coef < 1.0)
    for (const at::Tensor& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
  return total;
}

double clip_coefficient(double total, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(total)) return 1.0;
  return std::min(1.0, max_norm / (total + 1e-6));
}

double Schedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps) return lr * double(step) / double(warmup_steps);
  if (decay == "constant") return lr;
  // The first step after warmup runs at the full lr and the last one above the floor (a schedule
  // that reached the floor at the last step would waste it: a 1-step run would not move).
  const double span = double(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = std::min(1.0, std::max(0.0, double(step - 1 - warmup_steps) / span));
  const double shape = decay == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * shape);
}

}  // namespace gqa
