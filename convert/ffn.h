// --match-params: the seed poster kept parameter counts equal by widening the feed-forward
// networks (1024 -> 1696) when attention shrank. For a converted checkpoint the new units start
// with zero output weights, so the model computes exactly what it did, and uptraining grows them.
#pragma once
#include <cstdint>
#include <set>
#include <string>

#include "core/checkpoint.h"

namespace gqa {

// Parameters one extra FFN unit costs in every layer that has an FFN, summed over those layers.
int64_t ffn_unit_params(const Checkpoint& ckpt);

// Adds the tensors of every FFN widened by `extra` units to the writer (new up/gate rows drawn
// like the existing ones, seeded; new down columns and biases zero) and names the replaced ones.
void widen_ffn(const Checkpoint& in, int64_t extra, uint64_t seed, CheckpointWriter& writer,
               std::set<std::string>* replaced);

}  // namespace gqa
