// SentencePiece's ModelProto on the wire: its field numbers and just enough protobuf to read and
// write it, since the Debian package ships no sentencepiece_model.pb.h (private to tokenizers).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gqa::tok::proto {

// Field numbers and enum values of sentencepiece_model.proto (those used here).
enum ModelField : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3 };
enum PieceField : uint32_t { kPiece = 1, kScore = 2, kType = 3 };
enum PieceType : uint64_t { kNormal = 1, kUnknown = 2, kControl = 3 };
enum TrainerField : uint32_t { kModelType = 3, kVocabSize = 4, kByteFallback = 35, kUnkId = 40, kUnkPiece = 45 };
enum ModelType : uint64_t { kUnigram = 1 };
enum NormalizerField : uint32_t {
  kName = 1,
  kPrecompiledCharsmap = 2,
  kAddDummyPrefix = 3,
  kRemoveExtraWhitespaces = 4,
  kEscapeWhitespaces = 5,
};

enum WireType : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct Field {
  uint32_t number;
  int wire_type;
  std::string_view raw;      // tag and payload, for copying
  std::string_view payload;  // length-delimited content (wire type 2)
};

// Splits a message into its fields; nullopt when it is not well-formed.
std::optional<std::vector<Field>> parse_fields(std::string_view s);

// One field each: a varint (int32, bool, enum), a 32-bit float, a length-delimited string or
// sub-message.
void put_varint(std::string* out, uint32_t number, uint64_t v);
void put_float(std::string* out, uint32_t number, float v);
void put_bytes(std::string* out, uint32_t number, std::string_view bytes);

}  // namespace gqa::tok::proto
