// The protobuf wire format, only as far as SentencePiece's ModelProto needs it.
#include "core/tokenizers/sentencepiece_proto.h"

#include <cstring>

namespace gqa::tok::proto {
namespace {

bool read_varint(std::string_view s, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[(*pos)++]);
    *v |= uint64_t(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void write_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    *out += char((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *out += char(v);
}

void put_tag(std::string* out, uint32_t number, WireType type) { write_varint(out, (uint64_t(number) << 3) | type); }

}  // namespace

std::optional<std::vector<Field>> parse_fields(std::string_view s) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    uint64_t tag = 0, v = 0;
    if (!read_varint(s, &pos, &tag)) return std::nullopt;
    Field f{uint32_t(tag >> 3), int(tag & 7), {}, {}};
    switch (f.wire_type) {
      case kVarint:
        if (!read_varint(s, &pos, &v)) return std::nullopt;
        break;
      case kFixed64: pos += 8; break;
      case kLengthDelimited:
        if (!read_varint(s, &pos, &v) || v > s.size() - pos) return std::nullopt;
        f.payload = s.substr(pos, v);
        pos += v;
        break;
      case kFixed32: pos += 4; break;
      default: return std::nullopt;  // groups are not used by sentencepiece
    }
    if (pos > s.size()) return std::nullopt;
    f.raw = s.substr(start, pos - start);
    fields.push_back(f);
  }
  return fields;
}

void put_varint(std::string* out, uint32_t number, uint64_t v) {
  put_tag(out, number, kVarint);
  write_varint(out, v);
}

void put_float(std::string* out, uint32_t number, float v) {
  put_tag(out, number, kFixed32);
  uint32_t bits = 0;
  std::memcpy(&bits, &v, 4);
  for (int i = 0; i < 4; ++i) *out += char((bits >> (8 * i)) & 0xFF);  // little-endian
}

void put_bytes(std::string* out, uint32_t number, std::string_view bytes) {
  put_tag(out, number, kLengthDelimited);
  write_varint(out, bytes.size());
  out->append(bytes);
}

}  // namespace gqa::tok::proto
