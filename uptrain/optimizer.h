// AdamW with decoupled weight decay (the same arithmetic as torch.optim.AdamW, so runs match
// PyTorch step for step), parameter groups with their own lr multiplier and decay, global-norm
// gradient clipping, and the warmup + linear/cosine learning-rate schedule.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gqa {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
};

struct ParamGroup {
  std::string name;       // "weights", "no_decay", "wgqa_scalars"
  double lr_scale = 1.0;  // this group's lr = schedule lr * lr_scale
  bool decay = true;
  std::vector<std::string> keys;  // ModelParameter::key() of each tensor, for the saved state
  std::vector<at::Tensor> params;
};

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions opts);
  // One update with the gradients in each param's .grad(), at learning rate `lr` (before group
  // scaling). Parameters without a gradient are skipped (as PyTorch does).
  void step(double lr);
  int64_t steps() const { return step_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  int64_t held_bytes() const;  // of the moments
  // State for a checkpoint: "<key>.exp_avg" / "<key>.exp_avg_sq" tensors and the step count.
  std::map<std::string, at::Tensor> state_tensors() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t step);
  // Applies `fn` to the state of one parameter (e.g. permuting heads when groups change).
  void remap_state(const std::string& key, const std::function<at::Tensor(const at::Tensor&)>& fn);

 private:
  std::vector<ParamGroup> groups_;
  AdamWOptions opts_;
  int64_t step_ = 0;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> state_;  // key -> (exp_avg, exp_avg_sq)
};

// One AdamW update of `param` in place (torch.optim.AdamW's single-tensor path, operation for
// operation), at step `step` (1-based, for the bias corrections) and this group's lr.
void adamw_update(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                  const at::Tensor& exp_avg_sq, const AdamWOptions& opts, double lr, bool decay, int64_t step);

// torch.nn.utils.clip_grad_norm_'s factor for gradients of global norm `total`: max_norm /
// (total + 1e-6) when that is below 1, else 1 (also for max_norm <= 0 and a non-finite total).
double clip_coefficient(double total, double max_norm);

// Scales all gradients so their global L2 norm is at most max_norm (max_norm <= 0: no clipping);
// returns the norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

struct Schedule {
  double lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  std::string decay = "linear";  // "linear", "cosine", "constant"
  double min_lr_ratio = 0.0;     // floor at the end, as a fraction of lr
  // lr for optimizer step `step` (1-based): linear warmup from lr/warmup to lr, then decay from
  // lr (first step after warmup) towards the floor, which step total_steps + 1 would reach.
  double at(int64_t step) const;
};

}  // namespace gqa
