#include "core/model/kv_cache.h"

#include "core/error.h"

namespace gqa {

KVCache::KVCache(const std::vector<AttentionLayout>& layouts, int64_t batch, int64_t capacity, const Placement& p)
    : batch_(batch), capacity_(capacity) {
  auto opts = at::TensorOptions().device(p.device).dtype(p.dtype);
  for (const auto& l : layouts) {
    latent_rank_.push_back(l.latent_rank);
    if (l.is_latent()) {
      k_.push_back(at::zeros({batch, 1, capacity, l.cache_dims_per_token()}, opts));
      v_.push_back(k_.back().narrow(-1, 0, l.latent_rank));
      continue;
    }
    k_.push_back(at::zeros({batch, l.n_kv, capacity, l.head_dim_qk}, opts));
    v_.push_back(at::zeros({batch, l.n_kv, capacity, l.head_dim_v}, opts));
  }
  valid_ = at::zeros({batch, capacity}, opts.dtype(at::kBool));
  next_position_ = at::zeros({batch}, opts.dtype(at::kLong));
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < k_.size(); ++i) n += k_[i].nbytes() + (latent_rank_[i] ? 0 : v_[i].nbytes());
  return n;
}

at::Tensor KVCache::begin_step(const at::Tensor& mask) {
  const int64_t T = mask.size(1);
  if (length_ + T > capacity_)
    throw InputError("kv-cache", "capacity",
                     "step of " + std::to_string(T) + " tokens after " + std::to_string(length_) +
                         " overflows the cache of " + std::to_string(capacity_) + " slots");
  at::Tensor m = mask.to(valid_.device()).to(at::kBool);
  valid_.narrow(1, length_, T).copy_(m);
  at::Tensor ml = m.to(at::kLong);
  at::Tensor positions = (next_position_.unsqueeze(1) + ml.cumsum(1) - 1).clamp_min(0) * ml;
  next_position_ += ml.sum(1);
  return positions;
}

std::pair<at::Tensor, at::Tensor> KVCache::append(size_t l, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = k.size(2);
  k_[l].narrow(2, length_, T).copy_(k);
  if (!latent_rank_[l]) v_[l].narrow(2, length_, T).copy_(v);
  return {k_[l].narrow(2, 0, length_ + T), v_[l].narrow(2, 0, length_ + T)};
}

void KVCache::select_rows(const at::Tensor& rows) {
  const at::Tensor r = rows.to(valid_.device());
  for (size_t l = 0; l < k_.size(); ++l) {
    k_[l] = k_[l].index_select(0, r);
    v_[l] = latent_rank_[l] ? k_[l].narrow(-1, 0, latent_rank_[l]) : v_[l].index_select(0, r);
  }
  for (auto& [k, v] : cross) {
    k = k.index_select(0, r);
    v = v.index_select(0, r);
  }
  valid_ = valid_.index_select(0, r);
  next_position_ = next_position_.index_select(0, r);
  batch_ = r.size(0);
}

}  // namespace gqa
