// gqa convert IN_DIR OUT_DIR: MHA -> GQA/MQA with a pooling or regrouping strategy.
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/options.h"
#include "convert/converter.h"
#include "convert/grouping.h"
#include "core/error.h"

namespace gqa::cli {
namespace {

std::set<AttentionModule> parse_modules(const std::string& text) {
  std::set<AttentionModule> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "decoder-self" || item == "decoder_self") out.insert(AttentionModule::DecoderSelf);
    else if (item == "decoder-cross" || item == "decoder_cross") out.insert(AttentionModule::DecoderCross);
    else if (item == "encoder-self" || item == "encoder_self") out.insert(AttentionModule::EncoderSelf);
    else throw InputError("--modules", "", "unknown module '" + item + "' (expected decoder-self, decoder-cross, encoder-self)");
  }
  return out;
}

}  // namespace

int convert(const Args& args) {
  po::options_description opts("gqa convert IN_DIR OUT_DIR --strategy S (--kv-heads N | --mqa | --group-map MAP) [options]");
  ConvertOptions o;
  std::string exported = "grouped";
  opts.add_options()("help,h", "show options")
      ("in", po::value<std::string>()->required(), "source Hugging Face folder (MHA, or GQA to group further)")
      ("out", po::value<std::string>()->required(), "output folder (written atomically)")
      ("strategy,s", po::value<std::string>(&o.strategy)->default_value("mean"), "mean | first | random | weighted | random-weighted | similarity | svd")
      ("kv-heads,k", po::value<int>(), "KV heads per block (equal contiguous groups)")
      ("mqa", po::bool_switch(&o.mqa), "one KV head per block")
      ("group-map", po::value<std::string>(), "KV head of each query head, e.g. 0,0,0,1,1,1,2,2 (uneven groups)")
      ("modules", po::value<std::string>(), "T5: decoder-self,decoder-cross,encoder-self (default decoder-self,decoder-cross)")
      ("layers", po::value<std::string>(), "convert only these layers, e.g. 0-5,8 (others keep their attention)")
      ("seed", po::value<uint64_t>(&o.seed)->default_value(0), "seed for random choices")
      ("export", po::value<std::string>(&exported)->default_value("grouped"),
       "grouped: KV heads as converted; expanded: MHA-shaped weights (KV heads repeated) for vanilla transformers")
      ("force", po::bool_switch(&o.force), "replace OUT_DIR if it exists");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"in", "out"})) return 0;
  if (exported != "grouped" && exported != "expanded") throw InputError("--export", "", "expected grouped or expanded");
  o.export_expanded = exported == "expanded";
  const std::string in_dir = vm["in"].as<std::string>(), out_dir = vm["out"].as<std::string>();
  const ModelConfig cfg = load_config(in_dir);
  if (vm.count("kv-heads")) o.kv_heads = vm["kv-heads"].as<int>();
  if (vm.count("group-map")) o.group_map = parse_group_map(vm["group-map"].as<std::string>(), int(cfg.n_heads), "--group-map");
  if (vm.count("modules")) {
    if (!cfg.is_encoder_decoder()) throw InputError("--modules", "", std::string("only for T5; ") + family_name(cfg.family) + " has decoder self-attention only");
    o.modules = parse_modules(vm["modules"].as<std::string>());
  }
  if (vm.count("layers")) o.layers = parse_layers(vm["layers"].as<std::string>(), std::max(cfg.n_layers, cfg.n_encoder_layers), "--layers");

  std::cout << "gqa convert: " << in_dir << " -> " << out_dir << " (" << family_name(cfg.family) << ", strategy "
            << o.strategy << ")\n";
  const ConvertSummary s = convert_checkpoint(in_dir, out_dir, o, &std::cout);
  std::cout << "converted " << s.blocks << " attention blocks; KV cache per token (fp32) " << s.kv_bytes_per_token_before
            << " -> " << s.kv_bytes_per_token_after << " bytes (" << std::fixed << std::setprecision(3)
            << double(s.kv_bytes_per_token_after) / double(s.kv_bytes_per_token_before) << "x)\n"
            << "wrote " << out_dir << "\n";
  return 0;
}

}  // namespace gqa::cli
