// gqa fold IN_DIR OUT_DIR: bakes the learned WGQA scalars of a weighted folder into plain GQA weights.
#include <iostream>

#include "cli/options.h"
#include "convert/converter.h"

namespace gqa::cli {

int fold(const Args& args) {
  po::options_description opts("gqa fold IN_DIR OUT_DIR [--force]");
  bool force = false;
  opts.add_options()("help,h", "show options")(
      "in", po::value<std::string>()->required(),
      "weighted folder (from convert --strategy weighted|random-weighted, uptrained)")(
      "out", po::value<std::string>()->required(), "output folder: plain GQA, loadable like any converted folder")(
      "force", po::bool_switch(&force), "replace OUT_DIR if it exists");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"in", "out"})) return 0;
  const ConvertSummary s = fold_checkpoint(vm["in"].as<std::string>(), vm["out"].as<std::string>(), force, &std::cout);
  std::cout << "folded " << s.blocks << " weighted attention blocks into " << vm["out"].as<std::string>() << "\n";
  return 0;
}

}  // namespace gqa::cli
