// Option parsing shared by the verbs: DIR is the first positional argument, --help prints the
// verb's options. Parse errors are boost::program_options errors, which main() turns into exit 2.
#pragma once
#include <boost/program_options.hpp>

#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

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
  // Boost would say "the option '--in' is required": name the missing argument as the usage does.
  int place = 0;
  for (const char* name : positional) {
    ++place;
    const po::option_description* option = opts.find_nothrow(name, false);
    if (option && option->semantic()->is_required() && !vm.count(name))
      throw po::error("missing argument " + std::to_string(place) + ": " + option->description());
  }
  po::notify(vm);
  return true;
}

// "a,b,c" -> items; integers must be positive. InputError naming `what` otherwise.
template <typename T>
std::vector<T> split_list(const std::string& text, const std::string& what) {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if constexpr (std::is_same_v<T, std::string>) {
      out.push_back(item);
    } else {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size() || v < 1)
        throw InputError(what, "", "expected positive integers separated by commas, got '" + text + "'");
      if (static_cast<unsigned long long>(v) > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
        throw InputError(what, "",
                         "'" + item + "' is too large (at most " + std::to_string(std::numeric_limits<T>::max()) + ")");
      out.push_back(T(v));
    }
  }
  if (out.empty()) throw InputError(what, "", "is empty");
  return out;
}

}  // namespace gqa::cli
