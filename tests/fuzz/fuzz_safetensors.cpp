// Fuzz target: the input is a model.safetensors file.
//  1. SafetensorsFile: 8-byte header length, JSON header (dtype, shape, data_offsets, __metadata__),
//     offsets tiling the data buffer. Every accepted tensor is read whole (to_float32), and the
//     views are checked to lie inside the file and tile the buffer exactly.
//  2. The same file as the weights of a tiny GPT-2 folder (Checkpoint + load_role for every role
//     the family has): dtype and rank checks, Conv1D transpose, the fused q/k/v cut, the NaN check.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/arch.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace gqa;

// vocab 16, d_model 8, 2 heads, 1 layer, 8 positions, FFN 16 (seed: corpus/safetensors/gpt2-tiny-*).
constexpr const char* kConfig =
    R"({"model_type": "gpt2", "vocab_size": 16, "n_embd": 8, "n_head": 2, "n_layer": 1,
        "n_positions": 8, "n_inner": 16, "activation_function": "gelu_new"})";

const std::map<Role, std::vector<int64_t>>& expected_shapes() {
  static const std::map<Role, std::vector<int64_t>> shapes = {
      {Role::TokenEmbedding, {16, 8}}, {Role::PositionEmbedding, {8, 8}},
      {Role::LmHead, {16, 8}},         {Role::FinalNorm, {8}},
      {Role::FinalNormBias, {8}},      {Role::AttnNorm, {8}},
      {Role::AttnNormBias, {8}},       {Role::AttnQ, {8, 8}},
      {Role::AttnK, {8, 8}},           {Role::AttnV, {8, 8}},
      {Role::AttnO, {8, 8}},           {Role::AttnQBias, {8}},
      {Role::AttnKBias, {8}},          {Role::AttnVBias, {8}},
      {Role::AttnOBias, {8}},          {Role::AttnKScale, {2}},
      {Role::AttnVScale, {2}},         {Role::FfnNorm, {8}},
      {Role::FfnNormBias, {8}},        {Role::FfnUp, {16, 8}},
      {Role::FfnUpBias, {16}},         {Role::FfnDown, {8, 16}},
      {Role::FfnDownBias, {8}}};
  return shapes;
}

void read_whole_file(const SafetensorsFile& f, const uint8_t* data, size_t size) {
  fuzz::check(f.file_size() == size, "file_size");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  const uint64_t buffer = size - 8 - header_len;  // accepted, so 8 + header_len <= size
  // Views are pointers into the mapping; their offsets relative to the first must tile the
  // buffer [0, buffer) in some order.
  std::vector<std::pair<const uint8_t*, size_t>> spans;
  std::vector<float> out;
  for (const std::string& name : f.names()) {
    const TensorView& t = f.tensor(name);
    fuzz::check(t.name == name, "name");
    fuzz::check(t.nbytes == uint64_t(t.numel()) * dtype_size(t.dtype), "nbytes");
    fuzz::check(t.nbytes <= buffer, "nbytes beyond buffer");
    out.resize(size_t(t.numel()));
    to_float32(t.dtype, t.data, t.numel(), out.data());
    if (t.nbytes) spans.emplace_back(t.data, t.nbytes);
  }
  std::sort(spans.begin(), spans.end());
  size_t covered = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i) fuzz::check(spans[i].first == spans[i - 1].first + spans[i - 1].second, "tensors do not tile");
    covered += spans[i].second;
  }
  fuzz::check(covered == buffer, "tensors do not cover the buffer");
  for (const auto& [k, v] : f.metadata()) fuzz::check(k.size() + v.size() <= size, "metadata size");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = fuzz::scratch_dir();
  static const bool config_written = (fuzz::write_file(dir + "/config.json", kConfig), true);
  (void)config_written;
  const std::string path = dir + "/model.safetensors";
  fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));

  try {
    SafetensorsFile f(path);
    read_whole_file(f, data, size);
  } catch (const InputError&) {
    return 0;  // rejected with the project's error: what a bad file should get
  }

  try {
    Checkpoint ckpt(dir);
    for (const auto& [role, shape] : expected_shapes()) {
      if (!has_role(ckpt, Stack::Decoder, role, 0)) continue;
      try {
        HostTensor h = load_role(ckpt, Stack::Decoder, role, 0, shape);
        fuzz::check(h.shape == shape && int64_t(h.data.size()) == h.numel(), "load_role shape");
      } catch (const InputError&) {}
    }
    (void)ckpt.parameter_count();
    (void)ckpt.weight_dtype();
  } catch (const InputError&) {}
  return 0;
}
