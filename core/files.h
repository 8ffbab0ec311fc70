// File-system helpers on plain POSIX calls. Why not std::filesystem: the torch wheel's
// libtorch.so exports its own (older) copy of libstdc++'s filesystem symbols, and a binary that
// links LibTorch can bind to them at run time — std::filesystem::remove_all then crashes. Code
// that ends up in such binaries (checkpoint writing, tests of the runtime) uses these instead.
#pragma once
#include <string>
#include <vector>

namespace gqa::files {

bool exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
std::string parent(const std::string& path);  // "" when the path has no folder part
// Creates a fresh folder named prefix + random suffix; returns its path or "" (errno set). Private
// (0700), as mkdtemp makes it: for scratch space.
std::string make_unique_directory(const std::string& prefix);
// The same for a folder that will be published (renamed into place as gqa's output): it gets the
// mode mkdir(path, 0777) would give, 0777 less the umask (0755 under the usual 022), so other
// users of a shared machine can read what gqa writes, as they can read what transformers writes.
std::string make_unique_output_directory(const std::string& prefix);
// Each returns "" on success, else the system's reason.
std::string rename(const std::string& from, const std::string& to);
// Swaps two existing paths in one step (Linux renameat2 RENAME_EXCHANGE), so there is no moment
// with neither; "" on success, else the reason (e.g. a file system without support).
std::string exchange(const std::string& a, const std::string& b);
// Renames only when `to` does not exist (Linux renameat2 RENAME_NOREPLACE): "" on success, else
// the reason; `*existed` tells the case where `to` was there. File systems without the flag fall
// back to a check and a plain rename (a narrow window remains there).
std::string rename_no_replace(const std::string& from, const std::string& to, bool* existed);
// Whether a process with this id exists (kill(pid, 0)); stale temp folders are those of dead ones.
bool process_alive(long pid);
std::string copy_file(const std::string& from, const std::string& to);
std::string remove_all(const std::string& path);                   // a missing path is not an error
std::vector<std::string> list_directory(const std::string& path);  // names, without . and ..
// Up to max_bytes of a text file, plain or gzip-compressed (.gz read transparently); false when
// it cannot be opened or read.
bool read_text_prefix(const std::string& path, size_t max_bytes, std::string* out);
// Every line of a text file, plain or gzip-compressed (without the newline); false when it cannot
// be opened or read.
bool read_lines(const std::string& path, std::vector<std::string>* out);
// fsync a file or folder (through a fresh descriptor, so it syncs whoever wrote it); "" on
// success, else the system's reason.
std::string sync(const std::string& path);
// Replaces `path` with `text` so a crash leaves the old file or the new one, never a mix: a temp
// file beside it, written and synced, renamed over it, and the folder synced. "" or the reason.
std::string write_file_atomically(const std::string& path, const std::string& text);
// "write failed: <the system's reason from errno>" for a stream that failed to write (ENOSPC reads
// "No space left on device").
std::string write_failure();
// Whether stderr is a terminal that redraws (isatty(2) and TERM is not "dumb"): progress lines.
bool stderr_is_terminal();
// mkdir -p; true when the folder exists afterwards.
bool make_directories(const std::string& path);
// The path made absolute against the working directory (no symlink resolution); "" stays "".
std::string absolute(const std::string& path);

}  // namespace gqa::files
