// Where calibration statistics wait between the calibration pass and the conversion: in memory,
// or spilled to a folder as one safetensors file per block. The pass finishes blocks in layer
// order while the writer asks for them in tensor-name order (layers 0, 1, 10, 11, ...), so a model
// whose statistics do not fit beside it (Llama-2-7B: 32 blocks x 4096^2 floats = 2 GiB) keeps
// them on disk and holds one block's at a time.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "convert/strategy.h"
#include "core/config.h"

namespace gqa {

using BlockKey = std::pair<AttentionModule, int64_t>;

class CalibrationStore {
 public:
  CalibrationStore() = default;  // in memory
  // Spilled into `folder` (which must exist; the store does not remove it).
  explicit CalibrationStore(std::string folder) : folder_(std::move(folder)) {}
  CalibrationStore(CalibrationStore&&) = default;
  CalibrationStore& operator=(CalibrationStore&&) = default;

  void put(const BlockKey& key, BlockCalibration c);
  bool contains(const BlockKey& key) const { return keys_.count(key) != 0; }
  size_t size() const { return keys_.size(); }
  bool spilled() const { return !folder_.empty(); }
  // The block's statistics, or nullptr when the store has none. A spilled store reads the block
  // back on demand; the pointer stays valid until the next call.
  const BlockCalibration* find(const BlockKey& key) const;
  const BlockCalibration& at(const BlockKey& key) const;  // std::out_of_range when absent

 private:
  std::string file_of(const BlockKey& key) const;
  std::string folder_;
  std::set<BlockKey> keys_;
  std::map<BlockKey, BlockCalibration> in_memory_;
  mutable BlockKey loaded_key_{AttentionModule::DecoderSelf, -1};
  mutable BlockCalibration loaded_;
};

}  // namespace gqa
