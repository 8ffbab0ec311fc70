// Fuzz target: the input is a config.json.
//  1. load_config (as every verb reads a model folder): family fields, rope, num_key_value_heads,
//     gqa_group_map / gqa_qk_head_dim / gqa_v_head_dim / gqa_rope_pairs / gqa_modules / gqa_layers /
//     gqa_weighted; then what the rest of the program asks of a ModelConfig (every block's layout,
//     group sizes, KV bytes per token, tensor names of every role).
//  2. The same bytes as the shape JSON of `gqa train --config` (parse_model_shape), the config.json
//     made from an accepted shape (make_config, parsed back as `gqa train` does) and its parameter count.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/arch.h"
#include "core/config.h"
#include "core/error.h"
#include "core/init_model.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace gqa;

void use_config(const ModelConfig& c) {
  for (AttentionModule m : c.modules()) {
    const int64_t layers = m == AttentionModule::EncoderSelf ? c.n_encoder_layers : c.n_layers;
    fuzz::check(int64_t(c.layouts.at(m).size()) == layers, "one layout per layer");
    for (int64_t l = 0; l < layers; ++l) {
      const AttentionLayout& a = c.layout(m, l);
      fuzz::check(int(a.group_of.size()) == a.n_q && a.n_kv >= 1 && a.n_kv <= a.n_q, "layout heads");
      int sum = 0;
      for (int s : a.group_sizes()) sum += s;
      fuzz::check(sum == a.n_q, "group sizes");
      (void)a.describe();
      (void)a.is_mha();
      (void)a.is_contiguous_even();
      (void)c.stored_kv_heads(m, l);
      if (l > 2) break;  // the layouts of later layers are copies unless gqa_layers says otherwise
    }
  }
  (void)c.kv_bytes_per_token(2);
  for (int r = 0; r <= int(Role::FfnGateBias); ++r)
    for (Stack s : {Stack::Decoder, Stack::Encoder}) (void)locate(c, s, Role(r), c.n_layers - 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/config.json";
  fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));

  try {
    use_config(load_config(path));
  } catch (const InputError&) {}

  ModelShape shape;
  try {
    shape = parse_model_shape(read_json_file(path), path);
  } catch (const InputError&) {
    return 0;
  }
  // An accepted shape must give a config.json that load_config accepts (gqa train writes it).
  ModelConfig c;
  try {
    c = parse_config(make_config(shape), "<shape>");
  } catch (const InputError& e) {
    std::fprintf(stderr, "fuzz_config: accepted shape, rejected config: %s\n", e.what());
    std::abort();
  }
  use_config(c);
  (void)parameter_count(shape);
  return 0;
}
