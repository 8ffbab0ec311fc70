#include "convert/calibration_store.h"

#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"

namespace gqa {

std::string CalibrationStore::file_of(const BlockKey& key) const {
  return folder_ + "/" + module_name(key.first) + "-" + std::to_string(key.second) + ".safetensors";
}

void CalibrationStore::put(const BlockKey& key, BlockCalibration c) {
  keys_.insert(key);
  if (!spilled()) {
    in_memory_[key] = std::move(c);
    return;
  }
  const int64_t d = c.input_sum.size();
  std::vector<TensorToWrite> t;
  t.push_back({"input_gram", DType::F32, {d, d}, size_t(d * d) * 4, [&c](uint8_t* dst) {
                 std::memcpy(dst, c.input_gram.data(), size_t(c.input_gram.size()) * 4);
               }});
  t.push_back({"input_sum", DType::F32, {d}, size_t(d) * 4, [&c](uint8_t* dst) {
                 std::memcpy(dst, c.input_sum.data(), size_t(c.input_sum.size()) * 4);
               }});
  t.push_back({"tokens", DType::I64, {1}, 8, [&c](uint8_t* dst) { std::memcpy(dst, &c.tokens, 8); }});
  write_safetensors(file_of(key), std::move(t), {});
  if (loaded_key_ == key) loaded_key_.second = -1;
}

const BlockCalibration* CalibrationStore::find(const BlockKey& key) const {
  if (!keys_.count(key)) return nullptr;
  if (!spilled()) return &in_memory_.at(key);
  if (loaded_key_ == key) return &loaded_;
  const SafetensorsFile f(file_of(key));
  const TensorView& g = f.tensor("input_gram");
  const TensorView& s = f.tensor("input_sum");
  const TensorView& n = f.tensor("tokens");
  const int64_t d = s.numel();
  if (g.dtype != DType::F32 || s.dtype != DType::F32 || n.dtype != DType::I64 || g.numel() != d * d || n.numel() != 1)
    throw InputError(f.path(), "", "calibration statistics file is not what this store wrote");
  loaded_.input_gram.resize(d, d);
  loaded_.input_sum.resize(d);
  std::memcpy(loaded_.input_gram.data(), g.data, g.nbytes);
  std::memcpy(loaded_.input_sum.data(), s.data, s.nbytes);
  std::memcpy(&loaded_.tokens, n.data, 8);
  loaded_key_ = key;
  return &loaded_;
}

const BlockCalibration& CalibrationStore::at(const BlockKey& key) const {
  const BlockCalibration* c = find(key);
  if (!c)
    throw std::out_of_range(std::string("no calibration statistics for ") + module_name(key.first) + " " +
                            std::to_string(key.second));
  return *c;
}

}  // namespace gqa
