#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/json_depth.h"

namespace gqa {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0);
  if (absx >= 0x477ff000u) return sign | 0x7c00u;  // rounds to inf
  if (absx < 0x38800000u) {                        // subnormal or zero in half
    if (absx < 0x33000000u) return sign;
    uint32_t exp = absx >> 23, mant = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - exp;  // half subnormal unit is 2^-24
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return sign | half;
  }
  uint32_t half = ((absx - 0x38000000u) >> 13);
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return sign | half;
}

float bf16_to_float(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

// Reads an unsigned integer field and rejects anything that is not one.
uint64_t as_u64(const nlohmann::json& j, const std::string& path, const std::string& field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0))
    throw InputError(path, field, "expected a non-negative integer");
  return j.get<uint64_t>();
}

}  // namespace

size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& d : kDTypes)
    if (s == d.name) {
      *out = d.type;
      return true;
    }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever (no effect on files).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw InputError(path, "", std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path, "", "not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw InputError(path, "header",
                     "file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw InputError(path, "", std::string("mmap failed: ") + std::strerror(errno));
  map_ = static_cast<const uint8_t*>(m);

  try {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];
    if (header_len > kMaxHeaderBytes)
      throw InputError(path, "header length", std::to_string(header_len) + " bytes exceeds the 100 MiB limit");
    if (header_len > size_ - 8)
      throw InputError(
          path, "header length",
          std::to_string(header_len) + " bytes is larger than the file (" + std::to_string(size_) + " bytes)");
    const char* hbegin = reinterpret_cast<const char*>(map_ + 8);
    // nlohmann::json stops at a NUL byte and would ignore whatever follows; the spec allows only
    // JSON padded with spaces.
    if (const void* nul = std::memchr(hbegin, 0, header_len))
      throw InputError(
          path, "header",
          "invalid JSON (NUL byte at header offset " + std::to_string(static_cast<const char*>(nul) - hbegin) + ")");
    check_json_depth(std::string_view(hbegin, header_len), path, "header");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(hbegin, hbegin + header_len);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(path, "header", std::string("invalid JSON (") + e.what() + ")");
    }
    if (!header.is_object()) throw InputError(path, "header", "expected a JSON object");

    const uint8_t* buffer = map_ + 8 + header_len;
    const uint64_t buffer_size = size_ - 8 - header_len;
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") {
        if (!it->is_object()) throw InputError(path, "__metadata__", "expected an object of strings");
        for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
          if (!m2->is_string()) throw InputError(path, "__metadata__." + m2.key(), "expected a string");
          metadata_[m2.key()] = m2->get<std::string>();
        }
        continue;
      }
      const auto& e = *it;
      if (!e.is_object()) throw InputError(path, name, "expected an object with dtype, shape, data_offsets");
      TensorView t;
      t.name = name;
      if (!e.contains("dtype") || !e["dtype"].is_string())
        throw InputError(path, name + ".dtype", "missing or not a string");
      if (!parse_dtype(e["dtype"].get<std::string>(), &t.dtype))
        throw InputError(path, name + ".dtype",
                         "unknown dtype '" + e["dtype"].get<std::string>() +
                             "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
      if (!e.contains("shape") || !e["shape"].is_array())
        throw InputError(path, name + ".shape", "missing or not an array");
      uint64_t numel = 1;
      for (const auto& d : e["shape"]) {
        uint64_t dim = as_u64(d, path, name + ".shape");
        if (dim > uint64_t(std::numeric_limits<int64_t>::max()))
          throw InputError(path, name + ".shape", "dimension " + std::to_string(dim) + " is out of range");
        if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim)
          throw InputError(path, name + ".shape", "element count overflows");
        numel *= dim;
        t.shape.push_back(int64_t(dim));
      }
      if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
        throw InputError(path, name + ".data_offsets", "expected [begin, end]");
      uint64_t begin = as_u64(e["data_offsets"][0], path, name + ".data_offsets");
      uint64_t end = as_u64(e["data_offsets"][1], path, name + ".data_offsets");
      if (begin > end) throw InputError(path, name + ".data_offsets", "begin is after end");
      if (end > buffer_size)
        throw InputError(path, name + ".data_offsets",
                         "end " + std::to_string(end) + " is beyond the data buffer (" + std::to_string(buffer_size) +
                             " bytes; file truncated?)");
      if (end - begin != numel * dtype_size(t.dtype))
        throw InputError(path, name + ".data_offsets",
                         "spans " + std::to_string(end - begin) + " bytes but shape and dtype need " +
                             std::to_string(numel * dtype_size(t.dtype)));
      t.data = buffer + begin;
      t.nbytes = size_t(end - begin);
      spans.emplace_back(begin, end);
      index_[name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }
    // Offsets must tile the buffer exactly: overlaps would alias tensors, holes hide garbage.
    std::vector<size_t> order(spans.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a] < spans[b]; });
    uint64_t expected = 0;
    for (size_t i : order) {
      if (spans[i].first < expected)
        throw InputError(path, tensors_[i].name + ".data_offsets", "overlaps another tensor");
      if (spans[i].first > expected)
        throw InputError(path, tensors_[i].name + ".data_offsets", "leaves a gap at byte " + std::to_string(expected));
      expected = spans[i].second;
    }
    if (expected != buffer_size)
      throw InputError(
          path, "data_offsets",
          "tensors cover " + std::to_string(expected) + " of " + std::to_string(buffer_size) + " data bytes");
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw InputError(path_, name, "tensor not found");
  return tensors_[it->second];
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

void release_pages(const TensorView& t) {
  if (!t.data || t.nbytes == 0) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  // Only whole pages inside the tensor: a neighbour sharing a page keeps it.
  const uintptr_t begin = (uintptr_t(t.data) + page - 1) / page * page;
  const uintptr_t end = (uintptr_t(t.data) + t.nbytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void write_safetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // "{}", not "null", when empty
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    // Refuse to write what the reader would reject (callers compute nbytes by hand).
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= uint64_t(d);
    if (t.name == "__metadata__" || header.contains(t.name) ||
        std::any_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d < 0; }) ||
        t.nbytes != numel * dtype_size(t.dtype))
      throw InputError(path, t.name,
                       "duplicate or reserved name, or " + std::to_string(t.nbytes) +
                           " bytes that do not match its shape and dtype");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path, "", "cannot create file");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(h.size()) >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(h.data(), std::streamsize(h.size()));
  std::vector<uint8_t> buf;
  for (const auto& t : tensors) {
    buf.assign(t.nbytes, 0);
    if (t.nbytes) t.fill(buf.data());
    out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
  }
  out.flush();
  if (!out) throw InputError(path, "", files::write_failure());
}

void to_float32(DType src, const uint8_t* data, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    switch (src) {
      case DType::F32: {
        float v;
        std::memcpy(&v, data + 4 * i, 4);
        out[i] = v;
        break;
      }
      case DType::F64: {
        double v;
        std::memcpy(&v, data + 8 * i, 8);
        out[i] = float(v);
        break;
      }
      case DType::F16: {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = half_to_float(v);
        break;
      }
      case DType::BF16: {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = bf16_to_float(v);
        break;
      }
      case DType::I64: {
        int64_t v;
        std::memcpy(&v, data + 8 * i, 8);
        out[i] = float(v);
        break;
      }
      case DType::I32: {
        int32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        out[i] = float(v);
        break;
      }
      case DType::I16: {
        int16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = float(v);
        break;
      }
      case DType::I8: out[i] = float(int8_t(data[i])); break;
      case DType::U8:
      case DType::BOOL: out[i] = float(data[i]); break;
    }
  }
}

void from_float32(DType dst, const float* in, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    switch (dst) {
      case DType::F32: std::memcpy(out + 4 * i, &in[i], 4); break;
      case DType::F64: {
        double v = in[i];
        std::memcpy(out + 8 * i, &v, 8);
        break;
      }
      case DType::F16: {
        uint16_t v = float_to_half(in[i]);
        std::memcpy(out + 2 * i, &v, 2);
        break;
      }
      case DType::BF16: {
        uint16_t v = float_to_bf16(in[i]);
        std::memcpy(out + 2 * i, &v, 2);
        break;
      }
      default: throw InputError("", dtype_name(dst), "cannot store float weights in an integer dtype");
    }
  }
}

}  // namespace gqa
