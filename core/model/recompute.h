// Activation checkpointing: run a transformer block without keeping its activations for backward,
// and recompute them when backward reaches the block (Chen et al. 2016, "Training Deep Nets with
// Sublinear Memory Cost"). Training then holds one block's activations plus each block's input
// instead of every intermediate of every block, for about one extra forward of compute.
// This is the reentrant variant of torch.utils.checkpoint (LibTorch's C++ API has none): the
// forward runs under no_grad, a custom autograd node stands for the whole block, and its backward
// re-runs the block with grad enabled and calls backward on the recomputed output from inside the
// outer backward.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace gqa {

using CheckpointedBlock = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

// block(inputs), with the block's activations recomputed in backward rather than stored.
// Without grad mode this is just block(inputs). With it, the output's grad_fn is a
// "RecomputeBackward" node (even when no input requires grad: the block's own weights may).
// What the block must be, as for torch.utils.checkpoint:
//  - deterministic (no dropout or other random draws: the recompute must give the same values);
//  - a function of `inputs` and of leaf tensors it captures (weights, which accumulate their .grad
//    in the recompute's backward as without checkpointing) or of captured tensors needing no grad
//    (masks). A captured tensor that is itself the output of a graph needing grad (a position bias
//    computed from a trained table) must be passed as an input: backward would otherwise run
//    through its graph once per block and fail the second time.
// The autocast state (enabled and dtype, for the inputs' device type and for CPU) of the call is
// restored for the recompute, which may run on another thread (CUDA's backward threads).
// Kernels chosen by whether a tensor needs grad can differ between the no-grad forward and the
// recompute (SDPA on CPU skips its fused kernel for a mask that needs grad): the forward's values
// are then a no-grad evaluation's, equal to the training forward's within the dtype's rounding.
at::Tensor run_checkpointed(const CheckpointedBlock& block, const std::vector<at::Tensor>& inputs);

// True on this thread while a checkpointed block is being recomputed in backward: side effects of
// a block that must happen once per forward (calibration observers) check it.
bool recomputing();

}  // namespace gqa
