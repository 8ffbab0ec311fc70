// SentencePiece's precompiled charsmap (NormalizerSpec.precompiled_charsmap, HF's Precompiled
// normalizer), checked before libsentencepiece reads it (private to tokenizers).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace gqa::tok {

// Why libsentencepiece could not read `blob` safely, or nullopt when it can. libsentencepiece
// trusts the blob: the trie's offsets, the values pointing into the replacement strings and the
// number of matches along one input are all used unchecked (a malformed blob reads out of
// bounds), so every state the trie can reach is visited here once.
std::optional<std::string> precompiled_charsmap_problem(std::string_view blob);

}  // namespace gqa::tok
