// Training data: sources -> (cached) uint32 token files -> memory-mapped TokenStream; JSONL seq2seq
// pairs; packed LM windows; the seeded batch order.
#include "uptrain/data.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>

#include "core/error.h"
#include "core/files.h"
#include "core/jsonl.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa {
namespace {

using nlohmann::json;

// Bump when the layout of cache files or the meaning of a document changes.
constexpr const char* kCacheVersion = "gqa-data-cache-v1";
constexpr const char* kDocumentSeparator = "<|endoftext|>";
// Ids handed to the trainer are int32.
constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max();

std::string reason() { return std::strerror(errno); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// ---------------------------------------------------------------------------------------------
// Little-endian uint32 files (cache) and uint16/uint32 files (.bin), read the same way.

uint32_t load_le(const unsigned char* p, int bytes) {
  uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8;
  if (bytes == 4) v |= uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  return v;
}

void append_le32(std::string* out, uint32_t v) {
  const char bytes[4] = {char(v), char(v >> 8), char(v >> 16), char(v >> 24)};
  out->append(bytes, 4);
}

// A whole file mapped read-only; the mapping outlives a later rename over the file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path, "", "cannot open: " + reason());
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size == 0) {
      ::close(fd);
      throw InputError(path, "", "no tokens");
    }
    size_ = size_t(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    const std::string why = p == MAP_FAILED ? reason() : "";
    ::close(fd);
    if (p == MAP_FAILED) throw InputError(path, "", "cannot memory-map: " + why);
    data_ = static_cast<const unsigned char*>(p);
  }
  ~MappedFile() { ::munmap(const_cast<unsigned char*>(data_), size_); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Sources and their identity.

enum class Format { kText, kJsonl, kHdf5, kBin };

struct Source {
  std::string path;
  Format format;
};

Format detect_format(const std::string& path, const std::string& requested) {
  if (requested == "text") return Format::kText;
  if (requested == "jsonl") return Format::kJsonl;
  if (requested == "hdf5") return Format::kHdf5;
  if (requested == "bin") return Format::kBin;
  if (requested != "auto") {
    throw InputError("", "format", "\"" + requested + "\" is not one of auto, text, jsonl, hdf5, bin");
  }
  std::string name = base_name(path);
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  if (ends_with(name, ".jsonl")) return Format::kJsonl;
  if (ends_with(name, ".h5") || ends_with(name, ".hdf5")) return Format::kHdf5;
  if (ends_with(name, ".bin")) return Format::kBin;
  return Format::kText;
}

// Files of opts.paths in order; folders expand to their regular, non-hidden files sorted by name.
std::vector<Source> list_sources(const DataOptions& opts) {
  if (opts.paths.empty()) throw InputError("", "data", "no data files given");
  std::vector<Source> sources;
  for (const std::string& path : opts.paths) {
    if (files::is_directory(path)) {
      std::vector<std::string> names = files::list_directory(path);
      std::sort(names.begin(), names.end());
      size_t added = 0;
      for (const std::string& name : names) {
        const std::string file = join(path, name);
        if (name.empty() || name[0] == '.' || !files::is_regular_file(file)) continue;
        sources.push_back({file, detect_format(file, opts.format)});
        ++added;
      }
      if (added == 0) throw InputError(path, "", "folder has no data files");
    } else if (files::is_regular_file(path)) {
      sources.push_back({path, detect_format(path, opts.format)});
    } else {
      throw InputError(path, "", files::exists(path) ? "not a regular file or folder" : "no such file or folder");
    }
  }
  return sources;
}

// 64-bit FNV-1a over length-prefixed fields (so field boundaries cannot shift).
class KeyHash {
 public:
  KeyHash& add(const std::string& s) {
    add_bytes(std::to_string(s.size()) + ":");
    add_bytes(s);
    return *this;
  }
  KeyHash& add(int64_t v) { return add(std::to_string(v)); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void add_bytes(const std::string& s) {
    for (unsigned char c : s) h_ = (h_ ^ c) * 0x100000001b3ULL;
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

// Absolute path, size and modification time: a changed or replaced file gets a new cache entry.
void add_file_identity(KeyHash* key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw InputError(path, "", "cannot read: " + reason());
  char* absolute = ::realpath(path.c_str(), nullptr);
  key->add(absolute ? std::string(absolute) : path);
  std::free(absolute);
  key->add(int64_t(st.st_size)).add(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
}

// The tokenizer has no file name to hash, so it is identified by what it does: sizes and special
// ids, the ids of a probe text that exercises the pre-tokenizer and merges, and a spread sample
// of its vocabulary.
std::string tokenizer_fingerprint(const Tokenizer& tokenizer) {
  static const std::string probe =
      "Hello, world! It's the quick brown fox; she'll say \"don't\" — we've 12,345 items at "
      "3.14.\n\n"
      "  Indented\tline   with  spaces\r\nnaïve café Ünïcödé 東京 😀 Привет мир\n"
      "def grouped_query(attention): return attention ** 2  # code <|endoftext|> </s> <s> [CLS]\n"
      "Transformers uptraining converts multi-head checkpoints to grouped-query attention.";
  KeyHash key;
  key.add(tokenizer.vocab_size());
  for (const auto& ids : {tokenizer.prefix_ids, tokenizer.suffix_ids, tokenizer.encode(probe)}) {
    key.add(int64_t(ids.size()));
    for (int64_t id : ids) key.add(id);
  }
  for (const auto& special : {tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()}) {
    key.add(special.value_or(-1));
  }
  const int64_t samples = std::min<int64_t>(tokenizer.vocab_size(), 1024);
  for (int64_t k = 0; k < samples; ++k) {
    const int64_t id = k * tokenizer.vocab_size() / samples;
    try {
      key.add(tokenizer.decode({id}, false));
    } catch (const std::exception&) {
      key.add("<no token>");
    }
  }
  return key.hex();
}

// ---------------------------------------------------------------------------------------------
// The cache folder and atomic writes into it.

std::string cache_root(const DataOptions& opts) {
  if (!opts.cache_dir.empty()) return opts.cache_dir;
  if (const char* dir = std::getenv("GQA_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return join(xdg, "gqa");
  if (const char* home = std::getenv("HOME"); home && *home) return join(join(home, ".cache"), "gqa");
  throw InputError("", "cache_dir", "no token cache folder: set GQA_CACHE_DIR or HOME");
}

void make_directories(const std::string& dir) {
  for (size_t slash = 0; slash != std::string::npos;) {
    slash = dir.find('/', slash + 1);
    const std::string prefix = dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      throw InputError(prefix, "", "cannot create the token cache folder: " + reason());
    }
  }
  if (!files::is_directory(dir)) throw InputError(dir, "", "token cache path is not a folder");
}

// <cache>/tokens/<file name>-<key>.<suffix>; the file name only makes the folder readable.
std::string cache_path(const DataOptions& opts, const std::string& source, const KeyHash& key,
                       const std::string& suffix) {
  const std::string dir = join(cache_root(opts), "tokens");
  make_directories(dir);
  std::string name = base_name(source);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  return join(dir, name + "-" + key.hex() + suffix);
}

// Writes a temp file beside `path`, renamed over it by commit(); removed when abandoned.
class CacheWriter {
 public:
  explicit CacheWriter(std::string path) : path_(std::move(path)) {
    static std::atomic<int> counter{0};
    temp_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    file_ = std::fopen(temp_.c_str(), "wb");
    if (!file_) throw InputError(temp_, "", "cannot write the token cache: " + reason());
  }
  ~CacheWriter() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(temp_.c_str());
  }
  CacheWriter(const CacheWriter&) = delete;
  CacheWriter& operator=(const CacheWriter&) = delete;

  void append(const std::vector<uint32_t>& ids) {
    buffer_.clear();
    for (uint32_t id : ids) append_le32(&buffer_, id);
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
      throw InputError(temp_, "", "cannot write the token cache: " + reason());
    }
    count_ += int64_t(ids.size());
  }
  int64_t count() const { return count_; }
  void commit() {
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (closed != 0) throw InputError(temp_, "", "cannot write the token cache: " + reason());
    const std::string error = files::rename(temp_, path_);
    if (!error.empty()) throw InputError(path_, "", "cannot write the token cache: " + error);
    committed_ = true;
  }

 private:
  std::string path_, temp_, buffer_;
  std::FILE* file_ = nullptr;
  int64_t count_ = 0;
  bool committed_ = false;
};

// A usable cache entry: a non-empty whole number of uint32s (a crashed writer leaves only temps).
bool cache_hit(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size % 4 == 0;
}

// ---------------------------------------------------------------------------------------------
// Reading text: lines of plain or gzip files (zlib reads plain files as they are), streamed.

class LineReader {
 public:
  explicit LineReader(std::string path) : path_(std::move(path)) {
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) throw InputError(path_, "", "cannot open: " + reason());
    gzbuffer(file_, kChunk);
  }
  ~LineReader() { gzclose(file_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n'; `*had_newline` says whether one ended it. False at the end.
  bool next(std::string* line, bool* had_newline) {
    line->clear();
    while (true) {
      if (pos_ == chunk_.size() && !fill()) {
        *had_newline = false;
        if (line->empty()) return false;
        ++line_number_;
        return true;
      }
      const size_t newline = chunk_.find('\n', pos_);
      if (newline != std::string::npos) {
        line->append(chunk_, pos_, newline - pos_);
        pos_ = newline + 1;
        *had_newline = true;
        ++line_number_;
        return true;
      }
      line->append(chunk_, pos_, std::string::npos);
      pos_ = chunk_.size();
    }
  }
  int64_t line_number() const { return line_number_; }  // of the line last returned, from 1
  const std::string& path() const { return path_; }

 private:
  // 64 KiB reads: as fast as larger ones on big files, and cheap for the many small ones (a
  // zero-filled 1 MiB buffer per file cost more than reading a short file).
  static constexpr unsigned kChunk = 1 << 16;
  bool fill() {
    chunk_.resize(kChunk);
    const int n = gzread(file_, chunk_.data(), unsigned(chunk_.size()));
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      throw InputError(path_, "", std::string("cannot read: ") + (code == Z_ERRNO ? reason() : message));
    }
    chunk_.resize(size_t(n));
    pos_ = 0;
    return n > 0;
  }
  std::string path_;
  gzFile file_ = nullptr;
  std::string chunk_;
  size_t pos_ = 0;
  int64_t line_number_ = 0;
};

std::string strip_newlines(const std::string& s) {
  const size_t begin = s.find_first_not_of("\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of("\r\n") - begin + 1);
}

// Calls `document` with each document of a text file (see data.h), one at a time.
void for_each_text_document(const std::string& path, const std::function<void(const std::string&)>& document) {
  LineReader reader(path);
  std::string line, text;
  bool had_newline = false;
  auto flush = [&] {
    const std::string doc = strip_newlines(text);
    if (!doc.empty()) document(doc);
    text.clear();
  };
  while (reader.next(&line, &had_newline)) {
    if (line == kDocumentSeparator) {
      flush();
      continue;
    }
    text += line;
    if (had_newline) text += '\n';
  }
  flush();
}

// Calls `record` with each JSON object of a JSONL file and a "file:line" name for errors; blank
// lines are skipped.
void for_each_jsonl_record(const std::string& path,
                           const std::function<void(const json&, const std::string&)>& record) {
  LineReader reader(path);
  std::string line;
  bool had_newline = false;
  while (reader.next(&line, &had_newline)) {
    const std::string where = path + ":" + std::to_string(reader.line_number());
    if (const std::optional<json> value = parse_jsonl_line(line, where)) record(*value, where);
  }
}

std::vector<uint32_t> to_uint32(const std::vector<int64_t>& ids, const std::string& where) {
  std::vector<uint32_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] > kMaxId) {
      throw InputError(where, "", "the tokenizer produced id " + std::to_string(ids[i]));
    }
    out[i] = uint32_t(ids[i]);
  }
  return out;
}

// Encodes every document of a text or JSONL file, each followed by eos, into the cache file.
void tokenize_into(const Source& source, const DataOptions& opts, const Tokenizer& tokenizer, int64_t eos,
                   CacheWriter* out) {
  auto encode_document = [&](const std::string& text, const std::string& where) {
    if (text.empty()) return;
    std::vector<uint32_t> ids = to_uint32(tokenizer.encode(text), where);
    if (eos >= 0) ids.push_back(uint32_t(eos));
    out->append(ids);
  };
  if (source.format == Format::kText) {
    for_each_text_document(source.path, [&](const std::string& doc) { encode_document(doc, source.path); });
  } else {
    for_each_jsonl_record(source.path, [&](const json& record, const std::string& where) {
      encode_document(jsonl_string_field(record, opts.text_field, where), where);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// HDF5: a 1-D integer dataset, converted to uint32 into the cache in bounded chunks.

// Closes an HDF5 handle with its own close function.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// HDF5 prints its error stack to stderr by default; our InputErrors say what went wrong instead.
class QuietHdf5Errors {
 public:
  QuietHdf5Errors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

void convert_hdf5_into(const std::string& path, const std::string& dataset, CacheWriter* out) {
  QuietHdf5Errors quiet;
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(path, "", "not an HDF5 file");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw InputError(path, "", "cannot open the HDF5 file");
  if (H5Lexists(file.get(), dataset.c_str(), H5P_DEFAULT) <= 0) {
    throw InputError(path, dataset, "no such dataset (see hdf5_dataset)");
  }
  Handle data(H5Dopen2(file.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!data.ok()) throw InputError(path, dataset, "not a dataset");
  Handle type(H5Dget_type(data.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw InputError(path, dataset, "expected integer token ids");
  Handle space(H5Dget_space(data.get()), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw InputError(path, dataset, "expected a 1-D dataset");
  hsize_t total = 0;
  H5Sget_simple_extent_dims(space.get(), &total, nullptr);

  constexpr hsize_t kChunk = 1 << 20;
  std::vector<int64_t> values;
  std::vector<uint32_t> ids;
  for (hsize_t start = 0; start < total; start += kChunk) {
    hsize_t count = std::min(kChunk, total - start);
    values.resize(count);
    Handle memory(H5Screate_simple(1, &count, nullptr), H5Sclose);
    // Values beyond int64 saturate in HDF5's conversion and are then caught by the range check.
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr) < 0 ||
        H5Dread(data.get(), H5T_NATIVE_INT64, memory.get(), space.get(), H5P_DEFAULT, values.data()) < 0) {
      throw InputError(path, dataset, "cannot read the dataset");
    }
    ids.resize(count);
    for (hsize_t i = 0; i < count; ++i) {
      if (values[i] < 0 || values[i] > std::numeric_limits<uint32_t>::max()) {
        throw InputError(path, "token " + std::to_string(start + i),
                         "id " + std::to_string(values[i]) + " is not a valid token id");
      }
      ids[i] = uint32_t(values[i]);
    }
    out->append(ids);
  }
}

// One source's ids: little-endian uint16 or uint32 values in a mapped file.
struct Segment {
  std::shared_ptr<const MappedFile> file;
  int bytes = 4;
  int64_t begin = 0, size = 0;  // position of the first id in the whole stream, and the count
  uint32_t at(int64_t i) const { return load_le(file->data() + i * bytes, bytes); }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenStream

struct TokenStream::Impl {
  std::vector<Segment> segments;
  int64_t size = 0;
  std::string description;

  const Segment& segment_of(int64_t i) const {
    if (i < 0 || i >= size) {
      throw std::out_of_range("token " + std::to_string(i) + " of a stream of " + std::to_string(size));
    }
    const auto after = std::upper_bound(segments.begin(), segments.end(), i,
                                        [](int64_t pos, const Segment& s) { return pos < s.begin; });
    return *(after - 1);
  }
};

int64_t TokenStream::size() const { return impl ? impl->size : 0; }

uint32_t TokenStream::operator[](int64_t i) const {
  if (!impl) throw std::out_of_range("empty token stream");
  const Segment& s = impl->segment_of(i);
  return s.at(i - s.begin);
}

void TokenStream::read(int64_t begin, int64_t n, int32_t* out) const {
  if (n <= 0) return;
  if (begin < 0 || begin + n > size()) {
    throw std::out_of_range("tokens [" + std::to_string(begin) + ", " + std::to_string(begin + n) +
                            ") of a stream of " + std::to_string(size()));
  }
  int64_t pos = begin;
  while (pos < begin + n) {
    const Segment& s = impl->segment_of(pos);
    const int64_t end = std::min(begin + n, s.begin + s.size);
    for (int64_t i = pos; i < end; ++i) *out++ = int32_t(s.at(i - s.begin));
    pos = end;
  }
}

const std::string& TokenStream::description() const {
  static const std::string none = "no tokens";
  return impl ? impl->description : none;
}

namespace {

// Every id below vocab_size (and within int32, which is what the trainer reads).
void check_ids(const Segment& segment, const std::string& path, int64_t vocab_size) {
  const int64_t limit = vocab_size > 0 ? std::min(vocab_size, kMaxId + 1) : kMaxId + 1;
  for (int64_t i = 0; i < segment.size; ++i) {
    const uint32_t id = segment.at(i);
    if (id >= limit) {
      throw InputError(path, "token " + std::to_string(i),
                       "id " + std::to_string(id) +
                           (vocab_size > 0 ? " is not below the vocabulary size " + std::to_string(vocab_size)
                                           : " does not fit an int32"));
    }
  }
}

// Maps one source, tokenizing or converting it into the cache first when needed. `status` says
// which of "cached", "tokenized", "converted", "mapped" happened.
Segment load_source(const Source& source, const DataOptions& opts, const Tokenizer* tokenizer, int64_t eos,
                    const std::string& fingerprint, std::string* status) {
  Segment segment;
  if (source.format == Format::kBin) {
    if (opts.bin_dtype != "uint16" && opts.bin_dtype != "uint32") {
      throw InputError("", "bin_dtype", "\"" + opts.bin_dtype + "\" is not uint16 or uint32");
    }
    segment.bytes = opts.bin_dtype == "uint16" ? 2 : 4;
    segment.file = std::make_shared<const MappedFile>(source.path);
    if (segment.file->size() % segment.bytes != 0) {
      throw InputError(source.path, "",
                       "size " + std::to_string(segment.file->size()) + " bytes is not a multiple of " +
                           std::to_string(segment.bytes) + " (" + opts.bin_dtype + ")");
    }
    *status = "mapped";
  } else {
    KeyHash key;
    key.add(kCacheVersion);
    add_file_identity(&key, source.path);
    if (source.format == Format::kHdf5) {
      key.add("hdf5").add(opts.hdf5_dataset);
    } else {
      if (!tokenizer) throw InputError(source.path, "", "tokenizing text needs a tokenizer");
      key.add(source.format == Format::kText ? "text" : "jsonl").add(fingerprint).add(eos);
      if (source.format == Format::kJsonl) key.add(opts.text_field);
    }
    const std::string cached = cache_path(opts, source.path, key, ".u32");
    if (cache_hit(cached)) {
      *status = "cached";
    } else {
      CacheWriter writer(cached);
      if (source.format == Format::kHdf5) {
        convert_hdf5_into(source.path, opts.hdf5_dataset, &writer);
        *status = "converted";
      } else {
        tokenize_into(source, opts, *tokenizer, eos, &writer);
        *status = "tokenized";
      }
      if (writer.count() == 0) throw InputError(source.path, "", "no tokens");
      writer.commit();
    }
    segment.file = std::make_shared<const MappedFile>(cached);
  }
  segment.size = int64_t(segment.file->size()) / segment.bytes;
  check_ids(segment, source.path, opts.vocab_size);
  return segment;
}

}  // namespace

bool data_needs_tokenizer(const DataOptions& opts) {
  const std::vector<Source> sources = list_sources(opts);
  return std::any_of(sources.begin(), sources.end(),
                     [](const Source& s) { return s.format == Format::kText || s.format == Format::kJsonl; });
}

bool data_is_all_jsonl(const DataOptions& opts) {
  const std::vector<Source> sources = list_sources(opts);
  return std::all_of(sources.begin(), sources.end(), [](const Source& s) { return s.format == Format::kJsonl; });
}

TokenStream load_token_stream(const DataOptions& opts, const Tokenizer* tokenizer, int64_t eos) {
  if (eos > kMaxId) throw InputError("", "eos", "id " + std::to_string(eos) + " does not fit an int32");
  const std::vector<Source> sources = list_sources(opts);
  const bool needs_tokenizer = std::any_of(sources.begin(), sources.end(), [](const Source& s) {
    return s.format == Format::kText || s.format == Format::kJsonl;
  });
  const std::string fingerprint = needs_tokenizer && tokenizer ? tokenizer_fingerprint(*tokenizer) : "";

  auto impl = std::make_shared<TokenStream::Impl>();
  std::vector<std::string> statuses;
  for (const Source& source : sources) {
    std::string status;
    Segment segment = load_source(source, opts, tokenizer, eos, fingerprint, &status);
    segment.begin = impl->size;
    impl->size += segment.size;
    impl->segments.push_back(std::move(segment));
    statuses.push_back(status);
  }

  if (sources.size() == 1) {
    impl->description =
        base_name(sources[0].path) + ": " + std::to_string(impl->size) + " tokens (" + statuses[0] + ")";
  } else {
    std::string counts;
    for (const char* word : {"tokenized", "cached", "converted", "mapped"}) {
      const auto n = std::count(statuses.begin(), statuses.end(), word);
      if (n > 0) counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + word;
    }
    impl->description =
        std::to_string(sources.size()) + " files, " + std::to_string(impl->size) + " tokens (" + counts + ")";
  }
  TokenStream stream;
  stream.impl = std::move(impl);
  return stream;
}

// ---------------------------------------------------------------------------------------------
// PackedSequences

PackedSequences::PackedSequences(TokenStream stream, int64_t seq_len) : stream_(std::move(stream)), seq_len_(seq_len) {
  if (seq_len_ < 1) throw InputError("", "seq_len", "must be at least 1, got " + std::to_string(seq_len_));
  if (count() == 0) {
    throw InputError(stream_.description(), "",
                     "shorter than one training window of " + std::to_string(seq_len_ + 1) + " tokens");
  }
}

int64_t PackedSequences::count() const { return stream_.size() > 0 ? (stream_.size() - 1) / seq_len_ : 0; }

void PackedSequences::sequence(int64_t i, int32_t* out) const {
  if (i < 0 || i >= count()) {
    throw std::out_of_range("sequence " + std::to_string(i) + " of " + std::to_string(count()));
  }
  stream_.read(i * seq_len_, seq_len_ + 1, out);
}

// ---------------------------------------------------------------------------------------------
// Seq2seq pairs. Cache file (little-endian uint32): n, then n (source length, target length)
// pairs, then all ids in that order.

namespace {

struct EncodedPair {
  std::vector<uint32_t> source, target;
};

std::vector<EncodedPair> read_pair_cache(const std::string& path) {
  std::vector<EncodedPair> pairs;
  if (!cache_hit(path)) return pairs;
  const MappedFile file(path);
  const int64_t words = int64_t(file.size() / 4);
  auto word = [&](int64_t i) { return load_le(file.data() + 4 * i, 4); };
  const int64_t n = word(0);
  if (1 + 2 * n > words) return {};
  int64_t pos = 1 + 2 * n;
  pairs.resize(size_t(n));
  auto take = [&](int64_t length, std::vector<uint32_t>* ids) {
    if (pos + length > words) return false;
    ids->resize(size_t(length));
    for (uint32_t& id : *ids) id = word(pos++);
    return true;
  };
  for (int64_t k = 0; k < n; ++k) {
    if (!take(word(1 + 2 * k), &pairs[k].source) || !take(word(2 + 2 * k), &pairs[k].target)) return {};
  }
  if (pos != words) return {};  // inconsistent: tokenize again
  return pairs;
}

void write_pair_cache(const std::string& path, const std::vector<EncodedPair>& pairs) {
  CacheWriter writer(path);
  std::vector<uint32_t> header{uint32_t(pairs.size())};
  for (const EncodedPair& p : pairs) {
    header.push_back(uint32_t(p.source.size()));
    header.push_back(uint32_t(p.target.size()));
  }
  writer.append(header);
  for (const EncodedPair& p : pairs) {
    writer.append(p.source);
    writer.append(p.target);
  }
  writer.commit();
}

// prefix + text ids + suffix, the text cut so that the whole fits max_length (HF truncation).
std::vector<int32_t> with_special(const std::vector<uint32_t>& text, const Tokenizer& tokenizer, int64_t max_length) {
  const int64_t specials = int64_t(tokenizer.prefix_ids.size() + tokenizer.suffix_ids.size());
  int64_t keep = int64_t(text.size());
  if (max_length > 0) keep = std::clamp<int64_t>(max_length - specials, 0, keep);
  std::vector<int32_t> out;
  for (int64_t id : tokenizer.prefix_ids) out.push_back(int32_t(id));
  out.insert(out.end(), text.begin(), text.begin() + keep);
  for (int64_t id : tokenizer.suffix_ids) out.push_back(int32_t(id));
  if (max_length > 0 && int64_t(out.size()) > max_length) out.resize(max_length);
  return out;
}

}  // namespace

std::vector<Seq2SeqExample> load_seq2seq(const DataOptions& opts, const Tokenizer& tokenizer, int64_t max_source,
                                         int64_t max_target) {
  const std::vector<Source> sources = list_sources(opts);
  const std::string fingerprint = tokenizer_fingerprint(tokenizer);
  std::vector<Seq2SeqExample> examples;
  for (const Source& source : sources) {
    if (source.format != Format::kJsonl) {
      throw InputError(source.path, "",
                       "seq2seq data must be JSONL (one {\"" + opts.source_field + "\": ..., \"" + opts.target_field +
                           "\": ...} object per line)");
    }
    KeyHash key;
    key.add(kCacheVersion);
    add_file_identity(&key, source.path);
    key.add("seq2seq").add(fingerprint).add(opts.source_field).add(opts.target_field);
    const std::string cached = cache_path(opts, source.path, key, ".pairs.u32");

    std::vector<EncodedPair> pairs = read_pair_cache(cached);
    if (pairs.empty()) {
      for_each_jsonl_record(source.path, [&](const json& record, const std::string& where) {
        pairs.push_back({to_uint32(tokenizer.encode(jsonl_string_field(record, opts.source_field, where)), where),
                         to_uint32(tokenizer.encode(jsonl_string_field(record, opts.target_field, where)), where)});
      });
      if (pairs.empty()) throw InputError(source.path, "", "no records");
      write_pair_cache(cached, pairs);
    }

    for (size_t k = 0; k < pairs.size(); ++k) {
      Seq2SeqExample example{with_special(pairs[k].source, tokenizer, max_source),
                             with_special(pairs[k].target, tokenizer, max_target)};
      auto check = [&](const std::vector<int32_t>& ids, const std::string& field) {
        for (int32_t id : ids) {
          if (opts.vocab_size > 0 && id >= opts.vocab_size) {
            throw InputError(
                source.path, "record " + std::to_string(k + 1) + " " + field,
                "id " + std::to_string(id) + " is not below the vocabulary size " + std::to_string(opts.vocab_size));
          }
        }
      };
      check(example.source, opts.source_field);
      check(example.target, opts.target_field);
      examples.push_back(std::move(example));
    }
  }
  return examples;
}

// ---------------------------------------------------------------------------------------------
// BatchOrder

BatchOrder::BatchOrder(int64_t n_examples, int64_t batch_size, uint64_t seed, bool shuffle)
    : n_(n_examples), batch_(batch_size), seed_(seed), shuffle_(shuffle) {
  if (n_ < 1) throw InputError("", "n_examples", "no training examples");
  if (batch_ < 1) throw InputError("", "batch_size", "must be at least 1, got " + std::to_string(batch_));
  reshuffle();
}

void BatchOrder::reshuffle() {
  order_.resize(size_t(n_));
  for (int64_t i = 0; i < n_; ++i) order_[i] = i;
  if (!shuffle_) return;
  std::mt19937_64 engine(seed_ + uint64_t(epoch_));
  // Fisher-Yates; j uniform in [0, i] by rejecting the raw outputs below 2^64 mod (i + 1).
  for (int64_t i = n_ - 1; i > 0; --i) {
    const uint64_t range = uint64_t(i) + 1;
    const uint64_t threshold = (0 - range) % range;
    uint64_t r = engine();
    while (r < threshold) r = engine();
    std::swap(order_[i], order_[r % range]);
  }
}

std::vector<int64_t> BatchOrder::next() {
  std::vector<int64_t> batch;
  batch.reserve(size_t(batch_));
  while (int64_t(batch.size()) < batch_) {
    batch.push_back(order_[position_++]);
    if (position_ == n_) {
      ++epoch_;
      position_ = 0;
      reshuffle();
    }
  }
  return batch;
}

json BatchOrder::state() const {
  return {{"epoch", epoch_},      {"position", position_}, {"n_examples", n_},
          {"batch_size", batch_}, {"seed", seed_},         {"shuffle", shuffle_}};
}

void BatchOrder::restore(const json& s) {
  auto integer = [&](const char* field) {
    if (!s.is_object() || !s.contains(field) || !s[field].is_number_integer()) {
      throw InputError("batch_order", field, "missing or not an integer");
    }
    return s[field];
  };
  auto expect_same = [&](const char* field, const json& expected) {
    if (s.contains(field) && s[field] != expected) {
      throw InputError("batch_order", field,
                       "the checkpoint has " + s[field].dump() + ", this run " + expected.dump() +
                           "; resuming needs the same data, batch size and seed");
    }
  };
  const int64_t epoch = integer("epoch").get<int64_t>();
  const int64_t position = integer("position").get<int64_t>();
  integer("n_examples");
  integer("batch_size");
  expect_same("n_examples", n_);
  expect_same("batch_size", batch_);
  expect_same("seed", seed_);
  expect_same("shuffle", shuffle_);
  if (epoch < 0 || position < 0 || position >= n_) {
    throw InputError("batch_order", "position",
                     "epoch " + std::to_string(epoch) + ", position " + std::to_string(position) + " out of range");
  }
  epoch_ = epoch;
  position_ = position;
  reshuffle();
}

}  // namespace gqa
