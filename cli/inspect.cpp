// gqa inspect DIR: what a checkpoint is and what its KV cache costs. Torch-free (reads headers only).
#include <iomanip>
#include <iostream>

#include "cli/options.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/format.h"

namespace gqa::cli {
namespace {

// Consecutive layers with the same layout collapse into one line ("layers 0-11: ...").
nlohmann::json layout_runs(const std::vector<AttentionLayout>& layouts) {
  nlohmann::json runs = nlohmann::json::array();
  for (size_t i = 0; i < layouts.size();) {
    size_t j = i;
    while (j + 1 < layouts.size() && layouts[j + 1].group_of == layouts[i].group_of &&
           layouts[j + 1].head_dim_qk == layouts[i].head_dim_qk && layouts[j + 1].head_dim_v == layouts[i].head_dim_v)
      ++j;
    const AttentionLayout& l = layouts[i];
    runs.push_back({{"first_layer", i},
                    {"last_layer", j},
                    {"query_heads", l.n_q},
                    {"kv_heads", l.n_kv},
                    {"group_map", l.group_of},
                    {"group_sizes", l.group_sizes()},
                    {"head_dim_qk", l.head_dim_qk},
                    {"head_dim_v", l.head_dim_v},
                    {"summary", l.describe()}});
    i = j + 1;
  }
  return runs;
}

}  // namespace

int inspect(const Args& args) {
  po::options_description opts("gqa inspect DIR [options]");
  int64_t context = 0, batch = 1;
  opts.add_options()("help,h", "show options")("dir", po::value<std::string>()->required(),
                                               "Hugging Face model folder")(
      "context", po::value<int64_t>(&context)->default_value(0),
      "context length for the KV-cache size (default: the model's maximum, or 2048)")(
      "batch", po::value<int64_t>(&batch)->default_value(1), "batch size for the KV-cache size")(
      "json", "print JSON instead of a table");
  po::variables_map vm;
  if (!parse_options(args, opts, vm)) return 0;
  if (context < 0 || batch <= 0) throw InputError("--context/--batch", "", "must be positive");

  Checkpoint ckpt(vm["dir"].as<std::string>());
  const ModelConfig& c = ckpt.config();
  if (context == 0) context = c.max_positions > 0 ? c.max_positions : 2048;
  const DType dtype = ckpt.weight_dtype();
  const int64_t elem = int64_t(dtype_size(dtype));
  const int64_t per_token = c.kv_bytes_per_token(elem);

  nlohmann::json j;
  j["dir"] = ckpt.dir();
  j["family"] = family_name(c.family);
  j["decoder_layers"] = c.n_layers;
  if (c.is_encoder_decoder()) j["encoder_layers"] = c.n_encoder_layers;
  j["d_model"] = c.d_model;
  j["ffn_dim"] = c.ffn_dim;
  j["vocab_size"] = c.vocab_size;
  j["parameters"] = ckpt.parameter_count();
  j["dtype"] = dtype_name(dtype);
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& s : ckpt.shard_files()) shards.push_back(s.substr(s.find_last_of('/') + 1));
  j["shards"] = shards;
  for (AttentionModule m : c.modules()) j["attention"][module_name(m)] = layout_runs(c.layouts.at(m));
  j["kv_cache"] = {{"bytes_per_token", per_token},
                   {"context", context},
                   {"batch", batch},
                   {"bytes", per_token * context * batch},
                   {"dtype", dtype_name(dtype)}};
  if (c.is_encoder_decoder()) {
    int64_t cross = 0;
    for (const auto& l : c.layouts.at(AttentionModule::DecoderCross))
      cross += int64_t(l.n_kv) * (l.head_dim_qk + l.head_dim_v);
    j["kv_cache"]["cross_bytes_per_source_token"] = cross * elem;
  }
  if (vm.count("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto row = [](const std::string& k, const std::string& v) {
    std::cout << std::left << std::setw(16) << k << v << "\n";
  };
  row("folder", ckpt.dir());
  row("family", family_name(c.family));
  row("layers", c.is_encoder_decoder()
                    ? "encoder " + std::to_string(c.n_encoder_layers) + ", decoder " + std::to_string(c.n_layers)
                    : std::to_string(c.n_layers));
  row("d_model / ffn", std::to_string(c.d_model) + " / " + std::to_string(c.ffn_dim));
  for (AttentionModule m : c.modules())
    for (const auto& run : j["attention"][module_name(m)]) {
      std::string first = std::to_string(run["first_layer"].get<size_t>()),
                  last = std::to_string(run["last_layer"].get<size_t>());
      std::string map;
      for (int g : run["group_map"]) map += (map.empty() ? "" : ",") + std::to_string(g);
      row(std::string("attention"), std::string(module_name(m)) + " layers " + first +
                                        (first == last ? "" : "-" + last) + ": " + run["summary"].get<std::string>() +
                                        "  map " + map);
    }
  row("parameters", format_with_commas(ckpt.parameter_count()));
  std::string shard_list;
  for (const auto& s : shards) shard_list += (shard_list.empty() ? "" : ", ") + s.get<std::string>();
  row("weights", std::string(dtype_name(dtype)) + ", " + std::to_string(shards.size()) + " shard(s): " + shard_list);
  row("kv cache", format_with_commas(per_token) + " bytes/token (" + dtype_name(dtype) + "); context " +
                      std::to_string(context) + " x batch " + std::to_string(batch) + " = " +
                      format_bytes(double(per_token * context * batch)));
  if (c.is_encoder_decoder())
    row("cross kv",
        format_with_commas(j["kv_cache"]["cross_bytes_per_source_token"].get<int64_t>()) + " bytes/source token");
  return 0;
}

}  // namespace gqa::cli
