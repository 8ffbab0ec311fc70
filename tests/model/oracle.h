// Helpers for tests that compare against tensors dumped by tests/oracle/*.py.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/safetensors.h"

namespace gqa::test {

// Folder the CTest fixture wrote the oracle's cases into.
inline std::string oracle_dir() {
  const char* d = std::getenv("GQA_ORACLE_DIR");
  return d ? d : "oracle";
}

// A tensor of a reference file as an at::Tensor (copied; int64 and float32 kept as they are).
inline at::Tensor reference(const SafetensorsFile& f, const std::string& name) {
  const TensorView& t = f.tensor(name);
  at::ScalarType type = t.dtype == DType::I64 ? at::kLong : at::kFloat;
  if (t.dtype != DType::I64 && t.dtype != DType::F32) throw std::runtime_error("reference dtype must be I64 or F32");
  return at::from_blob(const_cast<uint8_t*>(t.data), t.shape, type).clone();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat).cpu() - b.to(at::kFloat).cpu()).abs().max().item<double>();
}

}  // namespace gqa::test
