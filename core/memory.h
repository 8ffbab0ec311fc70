// How much memory this process can still take, from every limit that would stop it: the kernel's
// MemAvailable, the cgroup's memory.max (a container or systemd slice; v1's limit_in_bytes) less
// what the cgroup already uses, and the data-segment limit (ulimit -d) less this process's VmData.
// Exceeding the first two ends in the OOM killer's SIGKILL with no message, the third in a failed
// allocation; verbs compare this with what they will need before loading anything.
#pragma once
#include <cstdint>
#include <string>

namespace gqa {

struct HostMemory {
  int64_t available = 0;   // bytes: the smallest of the limits below
  std::string limited_by;  // "MemAvailable", "cgroup memory.max", "ulimit -d"
};

HostMemory host_memory_available();

}  // namespace gqa
