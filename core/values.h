// Comma-separated values of the command-line options that name heads, layers and modules
// (gqa convert --group-map, --layers, --modules). Plain C++ in gqa_io, so the fuzz target
// (tests/fuzz/fuzz_cli_values.cpp) links them without the converter or LibTorch.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"

namespace gqa {

// Parses "0,0,0,1,1,1,2,2" (checked by validate_group_map against n_q); throws InputError naming `what`.
std::vector<int> parse_group_map(const std::string& text, int n_q, const std::string& what);

// Parses "0-3,6,8-9" into layer indices below n_layers; throws InputError naming `what`.
std::set<int64_t> parse_layers(const std::string& text, int64_t n_layers, const std::string& what);

// Parses "decoder-self,decoder-cross,encoder-self" (or decoder_self, ...); InputError naming
// --modules for an unknown name.
std::set<AttentionModule> parse_modules(const std::string& text);

}  // namespace gqa
