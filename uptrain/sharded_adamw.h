// AdamW over float32 master weights, optionally partitioned across processes: ZeRO stage 2
// (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
// Models"), built on the c10d collectives of distributed.h because LibTorch's C++ API has no FSDP.
//
// The parameters are laid end to end in buckets of about bucket_bytes (those of plan_buckets);
// each bucket, padded to a multiple of the number of shards, is cut into equal slices, and shard r
// owns slice r of every bucket. A process keeps, for its shard only, the float32 master weights,
// both AdamW moments and the float32 gradient sum (16 bytes per owned parameter; 12 when the
// weights are float32 and so serve as their own masters). After each
// micro-batch's backward the gradients are reduce-scattered bucket by bucket into that sum and
// the full gradients freed; after the update each bucket's updated slices are all-gathered back
// into the parameters, in their own dtype (bf16 weights with float32 masters when --dtype bf16).
//
// With shard = false there is one shard that every process holds whole (data parallel with
// master weights): gradients are all-reduced instead, and nothing is gathered.
//
// The arithmetic per element is torch.optim.AdamW's, as in optimizer.h (the reference path this
// is tested against).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uptrain/distributed.h"
#include "uptrain/optimizer.h"

namespace gqa {

class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<ParamGroup> groups, AdamWOptions opts, Communicator& comm, bool shard,
               std::size_t bucket_bytes = kDefaultBucketBytes);

  // Adds the gradients in each parameter's .grad(), averaged over the processes, to the shard's
  // float32 gradient sum, and frees them. Call after every micro-batch's backward.
  void reduce_gradients();
  // Clips the summed gradient to a global L2 norm of max_norm (<= 0: no clipping), as
  // clip_grad_norm does; returns the norm before clipping.
  double clip_gradients(double max_norm);
  // One AdamW update of the shard's masters at `lr` (before group scaling), then every process's
  // parameters receive the updated values; clears the gradient sum.
  void step(double lr);

  int64_t steps() const { return step_; }
  bool sharded() const { return shards_ > 1; }
  // Bytes of the tensors this process holds for the optimizer (masters, moments, gradient sum).
  int64_t held_bytes() const;

  // This process's part of the state as safetensors: for each parameter piece it owns, tensors
  // "<key>.<master|exp_avg|exp_avg_sq>@<offset>" (1-D float32, offset in the flattened parameter).
  // Files written by any number of processes load into any other (resharding).
  void save(const std::string& path) const;
  // Reads this shard's pieces from all `paths` (every process's file of one checkpoint). Also
  // reads the plain optimizer.safetensors of optimizer.h ("<key>.exp_avg", whole tensors), whose
  // masters are then the parameters' current values. Throws InputError naming the file and key
  // of a piece that is missing, mis-shaped or not float32.
  void load(const std::vector<std::string>& paths, int64_t step);
  // The name of process `rank`'s file in a checkpoint of `world` processes.
  static std::string file_name(int rank, int world);
  static bool is_shard_file(const std::string& name);

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    int64_t numel = 0, slice = 0;     // slice: numel / shards, rounded up
    int64_t shard_offset = 0;         // where this bucket's slice starts in the shard
  };
  // Elements [param_offset, +length) of parameter `param` are at [shard_offset, +length) of the shard.
  struct Piece {
    std::size_t param;
    int64_t param_offset, shard_offset, length;
  };
  // The float32 master values of a piece: in master_, or the float32 parameter itself.
  at::Tensor master_of(const Piece& piece) const;
  at::Tensor state_of(const Piece& piece, const std::string& kind) const;  // "master", "exp_avg", "exp_avg_sq"
  void gather_parameters();

  std::vector<ParamGroup> groups_;
  AdamWOptions opts_;
  Communicator& comm_;
  int shards_, shard_index_;
  std::vector<at::Tensor> params_;
  std::vector<std::string> keys_;
  std::vector<std::size_t> group_of_;
  std::vector<Bucket> buckets_;
  std::vector<Piece> pieces_;
  std::vector<std::pair<std::size_t, std::size_t>> bucket_pieces_;  // [first, end) of pieces_ per bucket
  at::Tensor master_;                           // [shard elements], float32; undefined when the weights are float32
  at::Tensor exp_avg_, exp_avg_sq_, grad_sum_;  // [shard elements], float32
  int64_t step_ = 0;
};

}  // namespace gqa
