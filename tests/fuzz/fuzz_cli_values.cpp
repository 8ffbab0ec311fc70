// Fuzz target: the comma-separated values of the command line.
// Input: one byte N (n = N + 1 query heads / layers), then the option's text. The same text goes to
//  - split_list<int>, <int64_t>, <std::string> (--kv-heads, --batch-sizes, --speed-batches,
//    --strategies),
//  - parse_group_map (convert --group-map, n query heads),
//  - parse_layers (convert --layers, n layers),
//  - parse_modules (convert --modules),
// and what each accepts must satisfy its contract (positive integers, a valid group map, layers
// below n).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "cli/options.h"
#include "core/error.h"
#include "core/values.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gqa;
  if (size < 1) return 0;
  const int n = int(data[0]) + 1;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);

  try {
    for (int v : cli::split_list<int>(text, "--kv-heads")) fuzz::check(v >= 1, "split_list<int>: positive");
  } catch (const InputError&) {}
  try {
    for (int64_t v : cli::split_list<int64_t>(text, "--batch-sizes"))
      fuzz::check(v >= 1, "split_list<int64_t>: positive");
  } catch (const InputError&) {}
  try {
    for (const std::string& v : cli::split_list<std::string>(text, "--strategies"))
      fuzz::check(!v.empty() && v.find(',') == std::string::npos, "split_list<string>: items");
  } catch (const InputError&) {}
  try {
    const std::vector<int> map = parse_group_map(text, n, "--group-map");
    fuzz::check(int(map.size()) == n, "group map: one entry per head");
    for (int g : map) fuzz::check(g >= 0 && g < n, "group map: KV head index");
  } catch (const InputError&) {}
  try {
    const std::set<int64_t> layers = parse_layers(text, n, "--layers");
    fuzz::check(!layers.empty() && *layers.begin() >= 0 && *layers.rbegin() < n, "layers: in range");
  } catch (const InputError&) {}
  try {
    (void)parse_modules(text);
  } catch (const InputError&) {}
  return 0;
}
