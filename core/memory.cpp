#include "core/memory.h"

#include <sys/resource.h>

#include <fstream>
#include <limits>
#include <sstream>

namespace gqa {
namespace {

// A "key: value kB" line of a /proc file, in bytes; -1 when absent.
int64_t proc_kb(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kb = -1;
      fields >> kb;
      return kb < 0 ? -1 : kb * 1024;
    }
  return -1;
}

// A number in a cgroup file ("max" and missing files: no limit, -1).
int64_t cgroup_number(const std::string& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text == "max") return -1;
  try {
    return std::stoll(text);
  } catch (...) {
    return -1;
  }
}

// Headroom left under this process's cgroup limits: each level of a v2 hierarchy (a container's
// limit may sit on a parent), else v1's memory controller. -1 when nothing limits.
int64_t cgroup_headroom() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  int64_t best = -1;
  auto consider = [&best](int64_t limit, int64_t used) {
    // v1 reports "no limit" as a huge page-rounded number.
    if (limit < 0 || limit >= (int64_t(1) << 60) || used < 0) return;
    const int64_t room = limit > used ? limit - used : 0;
    if (best < 0 || room < best) best = room;
  };
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) {  // cgroup v2
      std::string path = line.substr(3);
      for (;;) {
        const std::string dir = "/sys/fs/cgroup" + (path == "/" ? std::string() : path);
        consider(cgroup_number(dir + "/memory.max"), cgroup_number(dir + "/memory.current"));
        if (path == "/" || path.empty()) break;
        const auto slash = path.find_last_of('/');
        path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
      }
    } else {
      const auto first = line.find(':'), second = line.find(':', first + 1);
      if (first == std::string::npos || second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      if (controllers.find("memory") == std::string::npos) continue;
      const std::string dir = "/sys/fs/cgroup/memory" + line.substr(second + 1);
      consider(cgroup_number(dir + "/memory.limit_in_bytes"), cgroup_number(dir + "/memory.usage_in_bytes"));
    }
  }
  return best;
}

}  // namespace

HostMemory host_memory_available() {
  HostMemory m;
  m.available = proc_kb("/proc/meminfo", "MemAvailable");
  m.limited_by = "MemAvailable";
  if (m.available < 0) m.available = std::numeric_limits<int64_t>::max();
  const int64_t cgroup = cgroup_headroom();
  if (cgroup >= 0 && cgroup < m.available) {
    m.available = cgroup;
    m.limited_by = "cgroup memory.max";
  }
  rlimit data{};
  if (::getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY) {
    const int64_t used = std::max<int64_t>(0, proc_kb("/proc/self/status", "VmData"));
    const int64_t room = int64_t(data.rlim_cur) > used ? int64_t(data.rlim_cur) - used : 0;
    if (room < m.available) {
      m.available = room;
      m.limited_by = "ulimit -d";
    }
  }
  return m;
}

}  // namespace gqa
