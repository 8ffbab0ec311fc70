// Calibration statistics for activation-aware strategies (similarity on activations, svd): runs
// the source model on calibration text and accumulates, per attention block, the Gram matrix of
// the block's key/value input (the normed hidden state; T5 cross-attention: the encoder output).
// The only part of the converter that needs the LibTorch runtime.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "convert/strategy.h"
#include "core/model/model.h"

namespace gqa {

using CalibrationMap = std::map<std::pair<AttentionModule, int64_t>, BlockCalibration>;

// Token ids of a calibration text file: tokenized with the model folder's tokenizer and cut into
// sequences of `seq_len` tokens, `max_tokens` in all. Throws InputError when the file is missing,
// empty or shorter than one sequence.
std::vector<std::vector<int64_t>> calibration_sequences(const std::string& model_dir, const std::string& text_file,
                                                        int64_t max_tokens, int64_t seq_len);

// Runs the model on the sequences (batches of `batch`) and accumulates X^T X per block (through
// the model's attention observer, which is cleared again afterwards).
CalibrationMap collect_calibration(Model& model, const std::vector<std::vector<int64_t>>& sequences,
                                   int64_t batch = 8);

}  // namespace gqa
