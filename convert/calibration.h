// Calibration statistics for activation-aware strategies (similarity on activations, svd): runs
// the source model on calibration text and accumulates, per attention block, the Gram matrix of
// the block's key/value input (the normed hidden state; T5 cross-attention: the encoder output).
// The only part of the converter that needs the LibTorch runtime.
#pragma once
#include <string>
#include <vector>

#include "convert/calibration_store.h"
#include "core/model/model.h"

namespace gqa {

// Token ids of a calibration text file: tokenized with the model folder's tokenizer and cut into
// sequences of `seq_len` tokens, `max_tokens` in all. Throws InputError when the file is missing,
// empty or shorter than one sequence.
std::vector<std::vector<int64_t>> calibration_sequences(const std::string& model_dir, const std::string& text_file,
                                                        int64_t max_tokens, int64_t seq_len);

struct CalibrationTiming {
  int64_t tokens = 0;
  double total_seconds = 0;       // the whole pass
  double statistics_seconds = 0;  // of which accumulating X^T X (the rest is the model's forward)
};

// Runs the model on the sequences (batches of `batch`) and accumulates X^T X per block through the
// model's attention observer (cleared again afterwards). A Whole model runs batch by batch. A
// OneBlock model gets every sequence in one pass, block by block, and each block's statistics go
// into the store as soon as its block is done, so memory holds one block's sums (both give the
// same statistics: the same batches in the same order). `into` may be a spilled store.
void collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences, CalibrationStore& into,
                         int64_t batch = 8, CalibrationTiming* timing = nullptr);
// The same into a fresh in-memory store.
CalibrationStore collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences,
                                     int64_t batch = 8);

}  // namespace gqa
