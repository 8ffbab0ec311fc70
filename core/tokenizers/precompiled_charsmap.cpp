// The layout (sentencepiece/src/normalizer.cc, DecodePrecompiledCharsMap): a little-endian uint32
// trie size, a darts-clone double array of that many bytes (uint32 units), then the replacement
// strings, each ending in NUL, which the trie's leaf values index. A lookup
// (darts-clone commonPrefixSearch) starts at state offset(unit 0); byte c leads from state s to
// unit s ^ c when that unit's label is c, and on to state (s ^ c) ^ offset(unit); a unit with a
// leaf holds its value in the unit at that next state.
#include "core/tokenizers/precompiled_charsmap.h"

#include <cstdint>
#include <vector>

namespace gqa::tok {
namespace {

uint32_t label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
bool has_leaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t value(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

// libsentencepiece keeps at most this many matches of one input position (its stack array,
// Normalizer::kMaxTrieResultsSize) but reads as many as the trie reports.
constexpr int kMaxMatches = 32;

}  // namespace

std::optional<std::string> precompiled_charsmap_problem(std::string_view blob) {
  if (blob.size() <= 4) return "shorter than its header";
  uint32_t trie_bytes = 0;
  for (int i = 0; i < 4; ++i) trie_bytes |= uint32_t(static_cast<unsigned char>(blob[size_t(i)])) << (8 * i);
  if (trie_bytes == 0 || trie_bytes % 4 != 0 || trie_bytes > blob.size() - 4) {
    return "trie size " + std::to_string(trie_bytes) + " does not fit the " + std::to_string(blob.size()) +
           " bytes (a positive multiple of 4 expected)";
  }
  const std::string_view strings = blob.substr(4 + trie_bytes);
  if (strings.empty() || strings.back() != '\0') return "the replacement strings do not end in NUL";
  std::vector<uint32_t> units(trie_bytes / 4);
  for (size_t i = 0; i < units.size(); ++i) {
    for (size_t b = 0; b < 4; ++b) units[i] |= uint32_t(static_cast<unsigned char>(blob[4 + 4 * i + b])) << (8 * b);
  }
  const size_t n = units.size();
  // A state reads the units s ^ c for every byte c: all of s's 256-unit block must exist.
  const auto state_fits = [&](uint32_t s) { return (size_t(s) | 0xFF) < n; };

  // Depth-first over the states (a valid trie is acyclic), keeping for each the most matches
  // on one path from it.
  enum : uint8_t { kUnseen, kOpen, kDone };
  std::vector<uint8_t> mark(n, kUnseen), matches(n, 0);
  struct Frame {
    uint32_t state;
    int next_byte;
    int most;
  };
  const uint32_t root = offset(units[0]);
  if (!state_fits(root)) return "the trie's root points outside it";
  std::vector<Frame> stack{{root, 0, 0}};
  mark[root] = kOpen;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_byte == 256) {
      matches[f.state] = uint8_t(f.most);
      mark[f.state] = kDone;
      stack.pop_back();
      continue;
    }
    const auto c = uint32_t(f.next_byte);
    const uint32_t unit = units[f.state ^ c];
    if (label(unit) != c) {
      ++f.next_byte;
      continue;
    }
    const uint32_t next = (f.state ^ c) ^ offset(unit);
    if (!state_fits(next)) return "the trie points outside it";
    const int leaf = has_leaf(unit) ? 1 : 0;
    if (leaf && value(units[next]) >= strings.size()) return "a replacement starts outside the strings";
    if (mark[next] == kOpen) return "the trie has a cycle";
    if (mark[next] == kUnseen) {
      mark[next] = kOpen;
      stack.push_back({next, 0, 0});  // `f` is revisited for this byte once `next` is done
      continue;
    }
    const int most = leaf + matches[next];
    if (most > kMaxMatches) return "more than 32 rules match one input";
    if (most > f.most) f.most = most;
    ++f.next_byte;
  }
  return std::nullopt;
}

}  // namespace gqa::tok
