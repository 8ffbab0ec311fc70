// safetensors: memory-mapped reader (zero copy, every header field validated) and writer.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the byte buffer the offsets index (no overlaps, no holes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gqa {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "BF16", ... as safetensors spells them
bool parse_dtype(const std::string& s, DType* out);

// A tensor inside a mapped file; valid while its SafetensorsFile lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws InputError on any defect
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorView& tensor(const std::string& name) const;  // throws InputError when absent
  std::vector<std::string> names() const;                   // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

// Drops a tensor's pages from this process's mapping once its bytes have been used (they stay in
// the page cache), so streaming through a large checkpoint keeps resident memory small.
void release_pages(const TensorView& t);

// Collects tensors and writes one safetensors file (header padded to 8 bytes, tensors in name
// order). The bytes are produced on demand so a writer never holds a whole model.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t nbytes = 0;
  std::function<void(uint8_t* dst)> fill;  // writes exactly nbytes
};

// Writes to `path` directly; callers make the folder atomic (see checkpoint.h).
void write_safetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata);

// Conversions between storage dtypes and float32 (round-to-nearest-even for F16/BF16).
void to_float32(DType src, const uint8_t* data, int64_t n, float* out);
void from_float32(DType dst, const float* in, int64_t n, uint8_t* out);

}  // namespace gqa
