#include "core/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace gqa::files {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string parent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string make_unique_directory(const std::string& prefix) {
  std::string tmpl = prefix + "XXXXXX";
  if (!::mkdtemp(tmpl.data())) return "";
  return tmpl;
}

namespace {

// The process umask, read without changing it (umask(2) can only set it, and setting it even for a
// moment would race with other threads creating files): Linux >= 4.7 states it in
// /proc/self/status. 022 when that line is missing.
mode_t current_umask() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  unsigned mask = 022;
  if (f) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "Umask: %o", &mask) == 1) break;
    std::fclose(f);
  }
  return mode_t(mask);
}

}  // namespace

std::string make_unique_output_directory(const std::string& prefix) {
  const std::string dir = make_unique_directory(prefix);
  if (dir.empty()) return dir;
  if (::chmod(dir.c_str(), 0777 & ~current_umask()) != 0) {
    const int saved = errno;
    ::rmdir(dir.c_str());
    errno = saved;
    return "";
  }
  return dir;
}

std::string rename(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str()) == 0 ? "" : std::strerror(errno);
}

std::string rename_no_replace(const std::string& from, const std::string& to, bool* existed) {
  *existed = false;
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return "";
  if (errno == EEXIST) {
    *existed = true;
    return std::strerror(errno);
  }
  if (errno != EINVAL && errno != ENOSYS) return std::strerror(errno);
  if (exists(to)) {
    *existed = true;
    return std::strerror(EEXIST);
  }
  return rename(from, to);
}

std::string exchange(const std::string& a, const std::string& b) {
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0 ? "" : std::strerror(errno);
}

std::string write_failure() {
  return errno ? std::string("write failed: ") + std::strerror(errno) : std::string("write failed");
}

bool process_alive(long pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM); }

std::string copy_file(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return std::strerror(errno);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    const std::string why = std::strerror(errno);
    ::close(in);
    return why;
  }
  std::string why;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      why = std::strerror(errno);
      break;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf + done, size_t(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        why = std::strerror(errno);
        break;
      }
      done += w;
    }
    if (!why.empty()) break;
  }
  if (::close(out) != 0 && why.empty()) why = std::strerror(errno);
  ::close(in);
  return why;
}

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
}  // namespace

std::string remove_all(const std::string& path) {
  if (!exists(path)) return "";
  // Depth first, without following symbolic links.
  return ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS) == 0 ? "" : std::strerror(errno);
}

std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (!d) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

bool make_directories(const std::string& path) {
  if (path.empty() || is_directory(path)) return !path.empty();
  const std::string up = parent(path);
  if (!up.empty() && !make_directories(up)) return false;
  return ::mkdir(path.c_str(), 0777) == 0 || is_directory(path);
}

std::string absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) return path;
  return std::string(buf) + "/" + path;
}

bool read_text_prefix(const std::string& path, size_t max_bytes, std::string* out) {
  gzFile f = gzopen(path.c_str(), "rb");  // gzread passes plain files through unchanged
  if (!f) return false;
  out->assign(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    const unsigned want = unsigned(std::min<size_t>(max_bytes - got, 1u << 30));
    const int n = gzread(f, out->data() + got, want);
    if (n < 0) {
      gzclose(f);
      return false;
    }
    if (n == 0) break;
    got += size_t(n);
  }
  gzclose(f);
  out->resize(got);
  return true;
}

bool read_lines(const std::string& path, std::vector<std::string>* out) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return false;
  out->clear();
  std::string line;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) {
    for (int i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        line.push_back(buf[i]);
        continue;
      }
      out->push_back(std::move(line));
      line.clear();
    }
  }
  gzclose(f);
  if (n < 0) return false;
  if (!line.empty()) out->push_back(std::move(line));
  return true;
}

std::string sync(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  const bool ok = ::fsync(fd) == 0;
  const std::string reason = ok ? "" : std::strerror(errno);
  ::close(fd);
  return reason;
}

std::string write_file_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + temp + ": " + std::strerror(errno);
  bool ok = true;
  for (size_t written = 0; ok && written < text.size();) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n > 0)
      written += size_t(n);
    else if (errno != EINTR)
      ok = false;
  }
  ok = ok && ::fsync(fd) == 0;  // the rename must publish complete data
  const std::string reason = ok ? "" : std::string("cannot write: ") + std::strerror(errno);
  ::close(fd);
  if (ok && ::rename(temp.c_str(), path.c_str()) == 0) {
    const std::string folder = parent(path);
    return sync(folder.empty() ? "." : folder);
  }
  const std::string why = ok ? "cannot rename " + temp + " into place: " + std::strerror(errno) : reason;
  ::unlink(temp.c_str());
  return why;
}

}  // namespace gqa::files

namespace gqa::files {

bool stderr_is_terminal() {
  const char* term = ::getenv("TERM");
  return ::isatty(2) && !(term != nullptr && std::string(term) == "dumb");
}

}  // namespace gqa::files
