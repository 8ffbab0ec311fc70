// Shared by the libFuzzer targets: a scratch folder of this process's own (inputs reach the parsers
// as real files, through the same code the CLI uses), and splitting one input into several files.
//
// What counts as a finding: any crash, sanitizer report, leak, hang or out-of-memory, and any
// exception other than gqa::InputError (the one error type the CLI turns into one line + exit 2).
// The targets catch InputError only.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/files.h"

namespace gqa::fuzz {

// A fresh folder gqa-fuzz-<pid>-XXXXXX under /dev/shm (no disk writes) or $TMPDIR, removed at
// normal exit (run.sh removes the folder of a fuzzer that stopped at a finding).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string base = "/dev/shm";
    if (::access(base.c_str(), W_OK) != 0) {
      const char* t = std::getenv("TMPDIR");
      base = t && *t ? t : "/tmp";
    }
    std::string d = files::make_unique_directory(base + "/gqa-fuzz-" + std::to_string(::getpid()) + "-");
    if (d.empty()) {
      std::perror("gqa fuzz: cannot create a scratch folder");
      std::abort();
    }
    std::atexit([] { files::remove_all(scratch_dir()); });
    return d;
  }();
  return dir;
}

inline void write_file(const std::string& path, std::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(("gqa fuzz: cannot write " + path).c_str());
    std::abort();
  }
}

inline void remove_file(const std::string& path) { ::unlink(path.c_str()); }

// A broken invariant is a finding: say which and abort (libFuzzer keeps the input).
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

// Splits an input at its first `max_parts - 1` NUL bytes (the last part keeps any later ones).
// Valid JSON never contains a raw NUL, so a seed made of files joined by NULs splits back into
// exactly those files.
inline std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < max_parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  parts.push_back(rest);
  return parts;
}

}  // namespace gqa::fuzz
