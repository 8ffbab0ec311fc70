// Small helpers shared by the tests: a temporary folder removed on scope exit, and whole-file text
// I/O. Built on core/files (POSIX), not std::filesystem, so tests that link LibTorch can use them
// (see core/files.h for why).
#pragma once
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "core/files.h"

namespace gqa::test {

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& prefix = "gqa-test") {
    const char* base = std::getenv("TMPDIR");
    path = files::make_unique_directory(std::string(base && *base ? base : "/tmp") + "/" + prefix + "-");
    if (path.empty()) throw std::runtime_error("cannot create a temporary folder");
  }
  ~TempDir() { files::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// For tests that do not link LibTorch: the same folder, also as a std::filesystem path.
template <typename Path>
struct TempDirWithPath : TempDir {
  Path path;
  explicit TempDirWithPath(const std::string& prefix) : TempDir(prefix), path(TempDir::path) {}
};

}  // namespace gqa::test
