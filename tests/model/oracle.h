// Helpers for tests that compare against tensors dumped by tests/oracle/*.py.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

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

inline std::string oracle_case(const std::string& name) { return oracle_dir() + "/" + name; }

// Logits of a model folder for the inputs of an oracle case's reference file; decoder-only
// models get padded positions zeroed (they are undefined), T5 gets the reference decoder inputs.
inline at::Tensor logits_for(const std::string& model_dir, const std::string& case_name) {
  SafetensorsFile ref(oracle_case(case_name) + "/reference.safetensors");
  auto model = load_model(model_dir);
  at::Tensor ids = reference(ref, "input_ids"), mask = reference(ref, "attention_mask");
  if (model->is_encoder_decoder()) {
    Memory mem = model->encode(ids, mask);
    at::Tensor dec = reference(ref, "decoder_input_ids");
    return model->forward(dec, at::ones_like(dec), nullptr, &mem);
  }
  return model->forward(ids, mask, nullptr, nullptr, reference(ref, "position_ids")) * mask.unsqueeze(-1);
}

// Random token sequences (calibration input in tests).
inline std::vector<std::vector<int64_t>> random_sequences(int n, int len, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(n));
  for (auto& s : out)
    for (int t = 0; t < len; ++t) s.push_back(int64_t(rng() % uint64_t(vocab)));
  return out;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat).cpu() - b.to(at::kFloat).cpu()).abs().max().item<double>();
}

#if defined(GQA_PYTHON) && defined(GQA_SOURCE_DIR)
// Logits of an oracle case's reference inputs with padded positions zeroed (T5's as they are).
inline at::Tensor masked(const at::Tensor& logits, const std::string& case_name) {
  SafetensorsFile ref(oracle_case(case_name) + "/reference.safetensors");
  if (ref.has("decoder_input_ids")) return logits;
  return logits * reference(ref, "attention_mask").unsqueeze(-1);
}

// transformers' logits for a folder (through tests/oracle/hf_logits.py), for a case's inputs.
inline at::Tensor transformers_logits(const std::string& model_dir, const std::string& case_name, const TempDir& tmp) {
  const std::string out = tmp.file("hf_logits.safetensors");
  const std::string cmd = std::string(GQA_PYTHON) + " " + GQA_SOURCE_DIR + "/tests/oracle/hf_logits.py " + model_dir +
                          " " + oracle_case(case_name) + "/reference.safetensors " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  SafetensorsFile f(out);
  return masked(reference(f, "logits"), case_name);
}
#endif

}  // namespace gqa::test
