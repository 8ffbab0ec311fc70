// Option parsing shared by the verbs: DIR is the first positional argument, --help prints the
// verb's options. Parse errors are boost::program_options errors, which main() turns into exit 2.
#pragma once
#include <boost/program_options.hpp>

#include <iostream>

#include "cli/verbs.h"

namespace gqa::cli {

namespace po = boost::program_options;

// Returns false when --help was asked for (and printed). `positional` names the options that
// the leading bare arguments fill, in order.
inline bool parse_options(const Args& args, const po::options_description& opts, po::variables_map& vm,
                          std::initializer_list<const char*> positional = {"dir"}) {
  po::positional_options_description pos;
  for (const char* name : positional) pos.add(name, 1);
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace gqa::cli
