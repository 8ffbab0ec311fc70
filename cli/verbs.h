// One function per `gqa` verb; each parses its own options and returns the exit code.
#pragma once
#include <string>
#include <vector>

namespace gqa::cli {

using Args = std::vector<std::string>;  // arguments after the verb

int inspect(const Args& args);
int generate(const Args& args);
int convert(const Args& args);
int fold(const Args& args);
int export_folder(const Args& args);  // `gqa export` (export is a C++ keyword)
int uptrain(const Args& args);
int train(const Args& args);
int eval(const Args& args);
int compare(const Args& args);
int bench(const Args& args);  // sub-commands: decode

}  // namespace gqa::cli
