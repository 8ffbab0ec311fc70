#include "uptrain/sharded_adamw.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/safetensors.h"

namespace gqa {
namespace {

constexpr const char* kKinds[] = {"master", "exp_avg", "exp_avg_sq"};

// A saved piece: elements [offset, +length) of one parameter's state of one kind.
struct SavedPiece {
  int64_t offset, length;
  const TensorView* view;
  const std::string* file;
};

// "<key>.<kind>@<offset>" -> (key, kind, offset); the plain optimizer.safetensors of optimizer.h
// names whole tensors "<key>.<kind>" (offset 0). False for other names.
bool parse_piece_name(const std::string& name, std::string& key, std::string& kind, int64_t& offset) {
  std::string head = name;
  offset = 0;
  if (const auto at = name.rfind('@'); at != std::string::npos) {
    char* end = nullptr;
    const long long value = std::strtoll(name.c_str() + at + 1, &end, 10);
    if (end == name.c_str() + at + 1 || *end != '\0' || value < 0) return false;
    offset = value;
    head = name.substr(0, at);
  }
  for (const char* k : kKinds) {
    const std::string suffix = std::string(".") + k;
    if (head.size() > suffix.size() && head.compare(head.size() - suffix.size(), suffix.size(), suffix) == 0) {
      key = head.substr(0, head.size() - suffix.size());
      kind = k;
    }
  }
  return !kind.empty();
}

}  // namespace

ShardedAdamW::ShardedAdamW(std::vector<ParamGroup> groups, AdamWOptions opts, Communicator& comm, bool shard,
                           std::size_t bucket_bytes)
    : groups_(std::move(groups)),
      opts_(opts),
      comm_(comm),
      shards_(shard ? comm.world_size() : 1),
      shard_index_(shard ? comm.rank() : 0) {
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < groups_.size(); ++g)
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      params_.push_back(groups_[g].params[i]);
      keys_.push_back(groups_[g].keys[i]);
      group_of_.push_back(g);
    }
  int64_t shard_elements = 0;
  for (auto& members : plan_buckets(params_, bucket_bytes)) {
    Bucket b;
    b.params = std::move(members);
    for (std::size_t p : b.params) b.numel += params_[p].numel();
    b.slice = (b.numel + shards_ - 1) / shards_;
    b.shard_offset = shard_elements;
    shard_elements += b.slice;
    // This shard's elements of the bucket, parameter by parameter.
    const int64_t lo = b.slice * shard_index_, hi = std::min(b.numel, lo + b.slice);
    int64_t at = 0;
    const std::size_t first_piece = pieces_.size();
    for (std::size_t p : b.params) {
      const int64_t n = params_[p].numel(), from = std::max(lo, at), to = std::min(hi, at + n);
      if (from < to) pieces_.push_back({p, from - at, b.shard_offset + (from - lo), to - from});
      at += n;
    }
    bucket_pieces_.push_back({first_piece, pieces_.size()});
    buckets_.push_back(std::move(b));
  }
  const at::TensorOptions f32 =
      params_.empty() ? at::TensorOptions(at::kFloat) : params_[0].options().dtype(at::kFloat);
  exp_avg_ = at::zeros({shard_elements}, f32);
  exp_avg_sq_ = at::zeros({shard_elements}, f32);
  grad_sum_ = at::zeros({shard_elements}, f32);
  const bool float32_weights =
      std::all_of(params_.begin(), params_.end(), [](const at::Tensor& t) { return t.scalar_type() == at::kFloat; });
  if (!float32_weights) {
    master_ = at::zeros({shard_elements}, f32);
    for (const Piece& piece : pieces_)
      master_of(piece).copy_(params_[piece.param].detach().reshape({-1}).narrow(0, piece.param_offset, piece.length));
  }
}

at::Tensor ShardedAdamW::state_of(const Piece& piece, const std::string& kind) const {
  if (kind == "master") return master_of(piece);
  return (kind == "exp_avg" ? exp_avg_ : exp_avg_sq_).narrow(0, piece.shard_offset, piece.length);
}

at::Tensor ShardedAdamW::master_of(const Piece& piece) const {
  if (master_.defined()) return master_.narrow(0, piece.shard_offset, piece.length);
  return params_[piece.param].detach().view({-1}).narrow(0, piece.param_offset, piece.length);
}

int64_t ShardedAdamW::held_bytes() const {
  int64_t bytes = 0;
  for (const at::Tensor* t : {&master_, &exp_avg_, &exp_avg_sq_, &grad_sum_})
    if (t->defined()) bytes += t->numel() * int64_t(t->element_size());
  return bytes;
}

void ShardedAdamW::reduce_gradients() {
  at::NoGradGuard no_grad;
  const int world = comm_.world_size();
  for (const Bucket& b : buckets_) {
    // The bucket's gradients end to end in float32 (zeros for parameters without one and for the
    // padding), so that the sum over processes does not round in bf16.
    at::Tensor flat = at::zeros({b.slice * shards_}, grad_sum_.options());
    int64_t at = 0;
    for (std::size_t p : b.params) {
      const at::Tensor& grad = params_[p].grad();
      const int64_t n = params_[p].numel();
      if (grad.defined()) flat.narrow(0, at, n).copy_(grad.reshape({-1}));
      at += n;
    }
    at::Tensor slot = grad_sum_.narrow(0, b.shard_offset, b.slice);
    if (shards_ > 1) {
      at::Tensor summed = at::empty({b.slice}, flat.options());
      comm_.reduce_scatter_sum(flat, summed);
      slot.add_(summed, 1.0 / world);
    } else {
      if (world > 1) comm_.all_reduce_mean({flat});
      slot.add_(flat);
    }
    for (std::size_t p : b.params) params_[p].mutable_grad() = at::Tensor();
  }
}

double ShardedAdamW::clip_gradients(double max_norm) {
  at::NoGradGuard no_grad;
  const double local = grad_sum_.numel() ? grad_sum_.norm().item<double>() : 0.0;
  double squares = local * local;
  if (shards_ > 1) squares = comm_.all_reduce_sum({squares})[0];
  const double total = std::sqrt(squares);
  const double coef = clip_coefficient(total, max_norm);
  if (coef < 1.0) grad_sum_.mul_(coef);
  return total;
}

void ShardedAdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  // In chunks, so the update's temporaries stay small beside a shard of billions of elements.
  constexpr int64_t kChunk = int64_t(1) << 24;
  for (const Piece& piece : pieces_) {
    const ParamGroup& g = groups_[group_of_[piece.param]];
    for (int64_t from = 0; from < piece.length; from += kChunk) {
      const int64_t n = std::min(kChunk, piece.length - from), at = piece.shard_offset + from;
      adamw_update(master_of(piece).narrow(0, from, n), grad_sum_.narrow(0, at, n), exp_avg_.narrow(0, at, n),
                   exp_avg_sq_.narrow(0, at, n), opts_, lr * g.lr_scale, g.decay, step_);
    }
  }
  grad_sum_.zero_();
  gather_parameters();
}

void ShardedAdamW::gather_parameters() {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    const Bucket& b = buckets_[i];
    const at::ScalarType dtype = params_[b.params.front()].scalar_type();
    // This shard's slice of the bucket in the weights' dtype (zero padding past the bucket's end).
    at::Tensor mine = at::zeros({b.slice}, grad_sum_.options().dtype(dtype));
    for (std::size_t k = bucket_pieces_[i].first; k < bucket_pieces_[i].second; ++k) {
      const Piece& piece = pieces_[k];
      mine.narrow(0, piece.shard_offset - b.shard_offset, piece.length).copy_(master_of(piece));
    }
    at::Tensor whole = mine;
    if (shards_ > 1) {
      whole = at::empty({b.slice * shards_}, mine.options());
      comm_.all_gather(mine, whole);
    }
    int64_t at = 0;
    for (std::size_t p : b.params) {
      const int64_t n = params_[p].numel();
      params_[p].detach().view({-1}).copy_(whole.narrow(0, at, n));
      at += n;
    }
  }
}

std::string ShardedAdamW::file_name(int rank, int world) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "optimizer-rank-%05d-of-%05d.safetensors", rank, world);
  return buf;
}

bool ShardedAdamW::is_shard_file(const std::string& name) {
  int rank = -1, world = -1;
  return std::sscanf(name.c_str(), "optimizer-rank-%5d-of-%5d", &rank, &world) == 2 && rank >= 0 && rank < world &&
         name == file_name(rank, world);
}

void ShardedAdamW::save(const std::string& path) const {
  std::vector<TensorToWrite> tensors;
  for (const Piece& piece : pieces_)
    for (const char* kind : {"master", "exp_avg", "exp_avg_sq"}) {
      TensorToWrite w;
      w.name = keys_[piece.param] + "." + kind + "@" + std::to_string(piece.param_offset);
      w.dtype = DType::F32;
      w.shape = {piece.length};
      w.nbytes = std::size_t(piece.length) * 4;
      const at::Tensor part = state_of(piece, kind);
      // Copied to the host one piece at a time: a GPU shard never needs a host copy of its own.
      w.fill = [part](uint8_t* dst) {
        const at::Tensor host = part.to(at::kCPU).contiguous();
        std::memcpy(dst, host.data_ptr<float>(), std::size_t(host.numel()) * 4);
      };
      tensors.push_back(std::move(w));
    }
  write_safetensors(path, std::move(tensors),
                    {{"format", "pt"}, {"gqa_shard", std::to_string(shard_index_) + "/" + std::to_string(shards_)}});
}

void ShardedAdamW::load(const std::vector<std::string>& paths, int64_t step) {
  at::NoGradGuard no_grad;
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::pair<std::string, std::string>, std::vector<SavedPiece>> saved;  // (key, kind) -> pieces
  bool has_masters = false;
  for (const std::string& path : paths) {
    files.push_back(std::make_unique<SafetensorsFile>(path));
    const SafetensorsFile& f = *files.back();
    for (const std::string& name : f.names()) {
      std::string key, kind;
      int64_t offset = 0;
      if (!parse_piece_name(name, key, kind, offset)) throw InputError(path, name, "is not a piece of optimizer state");
      const TensorView& v = f.tensor(name);
      if (v.dtype != DType::F32) throw InputError(path, name, "expected F32 optimizer state");
      int64_t length = 1;
      for (int64_t d : v.shape) length *= d;
      saved[{key, kind}].push_back({offset, length, &v, &f.path()});
      has_masters = has_masters || kind == "master";
    }
  }
  const at::Device device = grad_sum_.device();
  for (const Piece& piece : pieces_) {
    const std::string& key = keys_[piece.param];
    const int64_t numel = params_[piece.param].numel();
    for (const char* kind : {"master", "exp_avg", "exp_avg_sq"}) {
      at::Tensor target = state_of(piece, kind);
      if (std::string(kind) == "master" && !has_masters) continue;  // the plain format: masters are the weights
      auto found = saved.find({key, kind});
      const std::string where = paths.empty() ? std::string("optimizer state") : paths.front();
      if (found == saved.end()) throw InputError(where, key + "." + kind, "missing from the saved optimizer state");
      int64_t covered = 0;
      for (const SavedPiece& s : found->second) {
        if (s.offset + s.length > numel)
          throw InputError(*s.file, key + "." + kind,
                           "reaches element " + std::to_string(s.offset + s.length) + " of a parameter of " +
                               std::to_string(numel) + " (another model?)");
        const int64_t from = std::max(piece.param_offset, s.offset);
        const int64_t to = std::min(piece.param_offset + piece.length, s.offset + s.length);
        if (from >= to) continue;
        const at::Tensor src = at::from_blob(const_cast<uint8_t*>(s.view->data), {s.length}, at::kFloat);
        target.narrow(0, from - piece.param_offset, to - from)
            .copy_(src.narrow(0, from - s.offset, to - from).to(device));
        covered += to - from;
      }
      if (covered != piece.length)
        throw InputError(where, key + "." + kind,
                         "the saved pieces cover " + std::to_string(covered) + " of the " +
                             std::to_string(piece.length) + " elements this process needs");
    }
  }
  step_ = step;
  grad_sum_.zero_();
  if (has_masters) gather_parameters();
}

}  // namespace gqa
